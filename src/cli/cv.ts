/** `phoneside cv DATA_DIR --groups SPEC`: group cross-validation of a training recipe. */
import { parseArgs } from 'node:util';
import type { CvReport } from '../train/cv.js';
import { reportToJSON } from '../eval/evaluation-report.js';
import { formatGroupTable } from '../eval/group-metrics.js';
import { formatConfusionMatrix } from '../eval/report.js';
import { metricsFromConfusion } from '../eval/metrics.js';
import { applyEnvOptions, CommandUsageError, ENV_OPTIONS, defined, intOpt, numberOpt } from './options.js';
import { RECIPE_OPTIONS, recipeFromArgs } from './recipe.js';

export const CV_HELP = `phoneside cv DATA_DIR --groups SPEC [options]

Group cross-validation: every image is predicted by a model trained without any image of its
group (its source: a shop, a website, a photographer). A random split puts photos of the same
source on both sides and over-estimates accuracy on photos from a new source; this does not.
Prints per-group and pooled accuracy, macro F1, ECE and the worst group; writes OUT/cv.json
(every figure and the out-of-fold predictions; schema phoneside.cv-report/1) and OUT/report.html
(the evaluation report of the out-of-fold predictions, with a per-group table).

  --groups SPEC          where each image's group comes from (required):
                           FILE.csv:COLUMN  e.g. manifest.csv:source (FILE in DATA_DIR or the
                                            working directory; a file/path column gives the image
                                            paths relative to DATA_DIR)
                           prefix:SEP       the file name up to SEP, e.g. prefix:__
                           folder           the sub-folder inside each class folder
  --folds K              group k-fold with K folds (groups balanced by size); default: leave one
                         group out (one fold per group)
  --inner-val-fraction F share of each fold's training images (stratified) used for early stopping
                         and the temperature (default 0.15); the held-out group is never used
  --max-error-rate X     abstention: fit one minimum confidence per class on the out-of-fold
                         predictions so that at most X of the answered images are wrong (default
                         0.02); 'train --from-cv' stores them in the model
  --tta                  test-time augmentation: score each held-out photo by the mean logits of the
                         photo and its mirror image ('train --from-cv' then makes a model that does too)
  --no-rotation-check    skip scoring the held-out photos turned 90°
  --out DIR              where to write cv.json and report.html (default runs/cv-<backbone>-<time>)
  --json                 print the report as JSON instead of the tables

Every option of 'phoneside train' that shapes the recipe is accepted (--backbone, --top-blocks,
--views, --augment default|strong|none, --epochs, --lr, --loss, --seed ...): see phoneside help train.
Trunk features are extracted once for all images and shared by every fold (and cached on disk).
`;

export async function cmdCv(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...ENV_OPTIONS,
      ...RECIPE_OPTIONS,
      weights: { type: 'string' },
      threads: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      groups: { type: 'string' },
      folds: { type: 'string' },
      'inner-val-fraction': { type: 'string' },
      'max-error-rate': { type: 'string' },
      tta: { type: 'boolean' },
      'no-rotation-check': { type: 'boolean' },
      out: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  if (v.help) {
    process.stdout.write(CV_HELP);
    return 0;
  }
  if (positionals.length !== 1) throw new CommandUsageError('cv takes exactly one DATA_DIR (see phoneside help cv)');
  if (typeof v.groups !== 'string' || v.groups.trim() === '') throw new CommandUsageError('cv needs --groups (e.g. --groups manifest.csv:source)');
  applyEnvOptions(v);
  const recipe = await recipeFromArgs(v);
  const { parseGroupSpec } = await import('../data/groups.js');
  try {
    parseGroupSpec(v.groups);
  } catch (err) {
    throw new CommandUsageError((err as Error).message);
  }
  const { crossValidate } = await import('../train/cv.js');
  const report = await crossValidate(positionals[0]!, {
    ...recipe,
    groups: v.groups,
    ...(v.tta ? { tta: true } : {}),
    ...(v['no-rotation-check'] ? { rotationCheck: false } : {}),
    ...defined({
      folds: intOpt(v, 'folds', 2),
      innerValFraction: numberOpt(v, 'inner-val-fraction', (x) => x > 0 && x < 1, 'a number between 0 and 1'),
      maxErrorRate: numberOpt(v, 'max-error-rate', (x) => x >= 0 && x < 1, 'a number in [0, 1)'),
      out: v.out,
    }),
  });
  if (v.json) {
    process.stdout.write(reportToJSON(report));
    return 0;
  }
  const m = metricsFromConfusion(report.pooled.metrics.confusion, report.classes);
  const t = report.timings;
  process.stdout.write(
    `\n${formatGroupTable(report, report.classes)}\n\nout-of-fold confusion matrix (all ${report.pooled.images} images):\n${formatConfusionMatrix(m)}\n\n` +
      `ECE ${report.pooled.ece.toFixed(4)} with each fold's temperature (${report.eceAtT1.toFixed(4)} at T = 1); ` +
      `pooled out-of-fold temperature ${report.oofTemperature.toFixed(3)}; median best epoch ${report.medianBestEpoch}\n` +
      abstainLine(report) +
      (report.rotated ? `the same held-out photos turned 90°: accuracy ${(100 * report.rotated.accuracy).toFixed(1)}% (a model that learned 'landscape means none' fails here)\n` : '') +
      `time: features ${t.featuresSeconds.toFixed(1)} s, ${report.folds.length} folds ${t.trainSeconds.toFixed(1)} s, total ${t.totalSeconds.toFixed(1)} s\n` +
      (report.outDir ? `wrote ${report.outDir}/cv.json and ${report.outDir}/report.html\n` : ''),
  );
  return 0;
}

function abstainLine(r: CvReport): string {
  const a = r.abstain;
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const th = Object.entries(a.fit.thresholds).map(([c, t]) => `${c} ${t.toFixed(3)}`).join(', ');
  return (
    `abstain (at most ${pct(a.maxErrorRate)} wrong among answers): thresholds ${th}; answers ${pct(a.fit.coverage)} of images with ${pct(a.fit.errorRate)} wrong; ` +
    `fitted without each group and applied to it: ${pct(a.crossFitted.coverage)} answered, ${pct(a.crossFitted.errorRate)} wrong\n`
  );
}
