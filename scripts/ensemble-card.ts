/**
 * Writes the model card of a shipped ensemble from its cv.json (written by `phoneside ensemble
 * --from-cv`): node --import tsx scripts/ensemble-card.ts models/ensemble
 */
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { CvReport } from '../src/eval/cv-report.js';
import { formatGroupTable } from '../src/eval/group-metrics.js';
import { metricsFromConfusion } from '../src/eval/metrics.js';
import { formatClassificationReport, formatConfusionMatrix } from '../src/eval/report.js';
import { readEnsemble } from '../src/infer/ensemble.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: ensemble-card.ts ENSEMBLE_DIR');
  process.exit(2);
}
const ens = await readEnsemble(dir);
const cv = JSON.parse(await readFile(join(dir, 'cv.json'), 'utf8')) as CvReport;
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const m = metricsFromConfusion(cv.pooled.metrics.confusion, cv.classes);
const a = cv.abstain;
const memberCards = await Promise.all(
  ens.members.map(async (mb) => {
    const member = JSON.parse(await readFile(join(mb.dir, 'manifest.json'), 'utf8')) as { info?: { groupCv?: { pooled?: { accuracy: number; worstGroup: { group: string; accuracy: number } } } } };
    const p = member.info?.groupCv?.pooled;
    return `| \`${mb.name}\` | ${mb.manifest.backbone.id} | ${mb.manifest.topBlocks === 0 ? 'head only' : `${mb.manifest.topBlocks} top blocks + head`} | ${mb.manifest.temperature.toFixed(3)} | ${p ? `${pct(p.accuracy)} (worst ${p.worstGroup.group} ${pct(p.worstGroup.accuracy)})` : '–'} |`;
  }),
);
const card = `# phoneside model card: \`${basename(resolve(dir))}\` (the default model)

The mean of ${ens.members.length} models' probabilities, run as one ONNX graph: each member applies its own
preprocessing, channel order and temperature inside the graph, and the ensemble's own abstain
thresholds apply to the mean. Members (their own cards are in their folders):

| member | backbone | trained layers | temperature | group CV alone |
|---|---|---|---|---|
${memberCards.join('\n')}

| | |
|---|---|
| input | ${ens.members[0]!.manifest.preprocessing.size}x${ens.members[0]!.manifest.preprocessing.size} RGB pixels 0..255 (each member normalises them itself) |
| abstain thresholds | ${Object.entries(ens.manifest.thresholds ?? {}).map(([c, t]) => `${c} ${t.toFixed(3)}`).join(', ')}: below its class's threshold the answer is \`uncertain\` (\`--no-thresholds\` for the raw label) |
| test-time augmentation | ${ens.manifest.tta ?? 'none'} |
| weights | ResNet50's come with \`npm ci\`; MobileNetV2's are downloaded on first use, or given with \`--weights mobilenet_v2_0.35=PATH\` / \`PHONESIDE_WEIGHTS_MOBILENET_V2_035\`. Offline without them, use \`--model resnet50\`. |

## Accuracy on sources it never saw (group cross-validation)
Leave one source out over the ${cv.folds.length} sources of the phones set (${cv.pooled.images} images): the ensemble's out-of-fold
prediction of each image is the mean of its members' calibrated out-of-fold predictions, each made
by a model trained without that image's source.

Pooled accuracy **${pct(cv.pooled.accuracy)}**, macro F1 **${cv.pooled.macroF1.toFixed(4)}**, worst source **${cv.pooled.worstGroup.group} ${pct(cv.pooled.worstGroup.accuracy)}**
(${cv.pooled.worstGroup.images} images), mean of the sources' accuracies ${pct(cv.pooled.meanGroupAccuracy)}; ECE ${cv.pooled.ece.toFixed(4)}.

\`\`\`
${formatGroupTable(cv, cv.classes)}
\`\`\`

\`\`\`
${formatConfusionMatrix(m)}

${formatClassificationReport(m, 4)}
\`\`\`

## Abstaining
Thresholds fitted on the ensemble's out-of-fold predictions so that at most ${pct(a.maxErrorRate)} of the answered
images are wrong answer **${pct(a.fit.coverage)}** of them (${pct(a.fit.errorRate)} wrong). Fitted without each source and applied
to it: **${pct(a.crossFitted.coverage)} answered, ${pct(a.crossFitted.errorRate)} wrong** — on a new source, expect more confident mistakes
than the fitted rate.
`;
await writeFile(join(dir, 'MODEL_CARD.md'), card);
console.log(`wrote ${join(dir, 'MODEL_CARD.md')}: group CV ${pct(cv.pooled.accuracy)}, worst ${cv.pooled.worstGroup.group} ${pct(cv.pooled.worstGroup.accuracy)}`);
