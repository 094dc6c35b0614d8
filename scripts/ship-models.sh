#!/usr/bin/env bash
# Rebuilds the shipped models from ../shared/datasets/phones with the recipe chosen by the group
# cross-validation study (bench/recipe-study.ts): for each backbone, leave-one-source-out CV
# (figures, out-of-fold temperature, abstain thresholds), the same recipe over random folds (to
# show the gap), the final model on all images (train --from-cv), then the ensemble of both,
# which is the default. About 15 min on 2 cores with a warm feature cache.
#   MOBILENET_WEIGHTS=../shared/weights/mobilenet_v2_0.35_224 bash scripts/ship-models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/datasets/phones}
OUT=${OUT:-runs/ship}
export PHONESIDE_WEIGHTS_MOBILENET_V2_035=${MOBILENET_WEIGHTS:-../shared/weights/mobilenet_v2_0.35_224}
cli() { node --import tsx scripts/cli.ts "$@"; }
mkdir -p "$OUT"
# groups for the random-fold comparison: each class dealt round-robin into 5 folds after a seeded shuffle
python3 - "$DATA/manifest.csv" "$OUT/random5.csv" <<'EOF'
import csv, random, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
random.seed(0)
by = collections.defaultdict(list)
for r in rows: by[r['label']].append(r)
with open(sys.argv[2], 'w', newline='') as f:
    w = csv.writer(f); w.writerow(['file', 'group'])
    for label in sorted(by):
        rs = by[label]; random.shuffle(rs)
        for i, r in enumerate(rs): w.writerow([r['file'], f'random{i % 5}'])
EOF

declare -A RECIPE=(
  [resnet50]="--backbone resnet50 --top-blocks 0 --augment none --views 1"
  [mobilenet_v2]="--backbone mobilenet_v2 --top-blocks 0 --augment none --views 1"
)
for name in resnet50 mobilenet_v2; do
  # shellcheck disable=SC2086
  cli cv "$DATA" --groups manifest.csv:source ${RECIPE[$name]} --quiet --out "$OUT/cv-$name" | tee "$OUT/cv-$name.txt"
  # shellcheck disable=SC2086
  cli cv "$DATA" --groups "$OUT/random5.csv:group" ${RECIPE[$name]} --quiet --no-rotation-check --out "$OUT/cv-$name-random" > "$OUT/cv-$name-random.txt"
  # shellcheck disable=SC2086
  cli train "$DATA" --from-cv "$OUT/cv-$name" ${RECIPE[$name]} --quiet --out "$OUT/final-$name"
  rm -rf "models/$name"
  node --import tsx scripts/ship-model.ts "$name" "$OUT/final-$name" "$OUT/cv-$name" "$OUT/cv-$name-random"
done
rm -rf models/ensemble
cli ensemble models/resnet50 models/mobilenet_v2 --link --names resnet50,mobilenet_v2 \
  --from-cv "$OUT/cv-resnet50,$OUT/cv-mobilenet_v2" --out models/ensemble
node --import tsx scripts/ensemble-card.ts models/ensemble
