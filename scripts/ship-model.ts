/**
 * Ships a trained model inside the package:
 *
 *   node --import tsx scripts/ship-model.ts NAME FINAL_RUN CV_DIR [RANDOM_CV_DIR]
 *
 * FINAL_RUN was trained on all images with `train --from-cv CV_DIR` (so its manifest already holds
 * the out-of-fold temperature and abstain thresholds). Its bundle is copied into models/NAME/ with
 * float16 weights, and a model card is written whose figures come from CV_DIR (group
 * cross-validation of the same recipe: every image predicted by a model that never saw its source)
 * and, when given, RANDOM_CV_DIR (the same recipe cross-validated over random folds, to show how
 * much a random split over-estimates).
 */
import { readFile } from 'node:fs/promises';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CvReport } from '../src/eval/cv-report.js';
import { formatGroupTable } from '../src/eval/group-metrics.js';
import { formatClassificationReport, formatConfusionMatrix } from '../src/eval/report.js';
import { metricsFromConfusion } from '../src/eval/metrics.js';
import { loadBundle, saveBundle } from '../src/model/bundle.js';

const [name, finalRun, cvDir, randomCvDir] = process.argv.slice(2);
if (!name || !finalRun || !cvDir) {
  console.error('usage: ship-model.ts NAME FINAL_RUN CV_DIR [RANDOM_CV_DIR]');
  process.exit(2);
}
const readCv = async (dir: string): Promise<CvReport> => JSON.parse(await readFile(join(dir, 'cv.json'), 'utf8')) as CvReport;
const cv = await readCv(cvDir);
const randomCv = randomCvDir ? await readCv(randomCvDir) : undefined;
const finalConfig = JSON.parse(await readFile(join(finalRun, 'config.json'), 'utf8')) as Record<string, unknown>;
const bundle = await loadBundle(join(finalRun, 'model'));
const m = bundle.manifest;
if (m.temperature !== cv.oofTemperature || JSON.stringify(m.thresholds ?? {}) !== JSON.stringify(cv.abstain.fit.thresholds)) {
  throw new Error(`${finalRun} was not trained with --from-cv ${cvDir} (temperature or thresholds differ)`);
}
const images = cv.pooled.images;
const out = resolve('models', name);
await saveBundle(out, {
  graph: bundle.graph,
  manifest: {
    ...m,
    weightsDtype: 'float16',
    info: {
      ...m.info,
      trainedOn: `all ${images} images of the phones set`,
      randomSplitCv: randomCv ? { folds: randomCv.folds.length, accuracy: randomCv.pooled.accuracy, macroF1: randomCv.pooled.macroF1 } : null,
    },
  },
});

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const cm = formatConfusionMatrix(metricsFromConfusion(cv.pooled.metrics.confusion, cv.classes));
const report = formatClassificationReport(metricsFromConfusion(cv.pooled.metrics.confusion, cv.classes), 4);
const a = cv.abstain;
const params = bundle.graph.nodes.reduce((s, n) => s + Object.values(n.weights).reduce((t, w) => t + w.data.length, 0), 0);
const augment = String(finalConfig['views']) === '1' ? 'no augmentation (1 clean view per image)' : `${String(finalConfig['views'])} cached trunk views per image (1 clean + ${Number(finalConfig['views']) - 1} augmented)`;
const card = `# phoneside model card: \`${name}\`

| | |
|---|---|
| task | photo -> \`${m.classes.join('` / `')}\` (front of a mobile phone, its back, anything else) |
| backbone | ${m.backbone.id} (ImageNet, Keras weights from \`${m.backbone.weightsSource}\`, sha256 digest \`${m.backbone.weightsSha256.slice(0, 16)}…\`) |
| trained layers | ${m.topBlocks === 0 ? 'head only' : `${m.topBlocks} top backbone block(s) above \`${m.backbone.cut}\` +`} (GAP -> FC ${m.head.units[0]} -> BN -> PReLU -> Dropout ${m.head.dropout} -> FC ${m.head.units[1]} -> BN -> PReLU -> Dropout -> FC ${m.classes.length}) |
| input | ${m.preprocessing.size}x${m.preprocessing.size} ${m.preprocessing.channelOrder}, resize '${m.preprocessing.resize}', (x - [${m.preprocessing.mean.join(', ')}]) / [${m.preprocessing.std.join(', ')}] |
| temperature | ${m.temperature.toFixed(4)} (fitted on the out-of-fold predictions of group cross-validation) |
| abstain thresholds | ${Object.entries(m.thresholds ?? {}).map(([c, t]) => `${c} ${t.toFixed(3)}`).join(', ')}: below its class's threshold the answer is \`uncertain\` (\`--no-thresholds\` for the raw label) |
| weights file | float16, ${params.toLocaleString('en')} parameters; the frozen trunk is rebuilt from the backbone's own weights |

## Data and recipe
Trained on **all ${images} images** of the project's phones set (12 sources: real photos of phones in
hands and shops, product renders, look-alike devices and everyday objects as \`none\`; see the set's
SOURCES.md) for ${String(finalConfig['epochs'])} epochs (the median best epoch of the cross-validation folds), with ${augment}.
Loss ${String(finalConfig['loss'])}${finalConfig['loss'] === 'focal' ? ` (gamma ${String(finalConfig['gamma'])})` : ''}, ${String(finalConfig['optimizer'])} (lr ${String(finalConfig['lr'])}, weight decay ${String(finalConfig['weightDecay'])}), batch ${String(finalConfig['batchSize'])}, seed ${String(finalConfig['seed'])}.
Made with \`phoneside cv DATA --groups manifest.csv:source ...\` then \`phoneside train DATA --from-cv CV ...\` (the same recipe options).

## Accuracy on sources it never saw (group cross-validation)
Leave one source out: each of the ${cv.folds.length} sources was predicted by a model trained on the other ${cv.folds.length - 1}
(early stopping and temperature on an inner split of those), so every figure below is for photos
from a source the model had not seen. This is the figure to expect on your own photos.
${randomCv ? `The same recipe cross-validated over ${randomCv.folds.length} random folds scores **${pct(randomCv.pooled.accuracy)}** (macro F1 ${randomCv.pooled.macroF1.toFixed(4)}): a random split puts photos of the same source on both sides and over-estimates accuracy on new sources by ${(100 * (randomCv.pooled.accuracy - cv.pooled.accuracy)).toFixed(1)} points.\n` : ''}
Pooled accuracy **${pct(cv.pooled.accuracy)}**, macro F1 **${cv.pooled.macroF1.toFixed(4)}**, worst source **${cv.pooled.worstGroup.group} ${pct(cv.pooled.worstGroup.accuracy)}**
(${cv.pooled.worstGroup.images} images), mean of the sources' accuracies ${pct(cv.pooled.meanGroupAccuracy)}; ECE ${cv.pooled.ece.toFixed(4)}.
${cv.rotated ? `The same held-out photos turned 90°: ${pct(cv.rotated.accuracy)} (phones lying sideways).\n` : ''}
\`\`\`
${formatGroupTable(cv, cv.classes)}
\`\`\`

\`\`\`
${cm}

${report}
\`\`\`

## Abstaining
Thresholds fitted on all ${images} out-of-fold predictions so that at most ${pct(a.maxErrorRate)} of the answered
images are wrong: they answer **${pct(a.fit.coverage)}** of those images with ${pct(a.fit.errorRate)} wrong. Fitted without each
source and applied to it (what to expect on a new source): **${pct(a.crossFitted.coverage)} answered, ${pct(a.crossFitted.errorRate)} wrong**.
The error rate of the answered images does not carry over to new sources at the fitted level: on
photos unlike the training data, confident mistakes are more frequent.

## Known limits
- Sources differ a lot; the hardest are listed in the table above. One image of a small source is
  several points of its accuracy.
- Hard look-alikes (TVs, monitors, consoles, mirrors, power banks) are rare in the training data.
- Photos are squashed to a square: extreme aspect ratios (panoramas, long strips) are out of domain.
`;
await writeFile(join(out, 'MODEL_CARD.md'), card);
console.log(`shipped ${finalRun} as models/${name} (group CV ${pct(cv.pooled.accuracy)}, worst ${cv.pooled.worstGroup.group} ${pct(cv.pooled.worstGroup.accuracy)})`);
