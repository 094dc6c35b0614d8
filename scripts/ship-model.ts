/**
 * Ships a trained model inside the package: `node --import tsx scripts/ship-model.ts FINAL_RUN
 * VALIDATED_RUN NAME` copies FINAL_RUN's bundle (trained on all images) into models/NAME/ with
 * float16 weights, and writes a model card whose figures come from VALIDATED_RUN (the same recipe,
 * trained on the 80% split and measured on the held-out 20%).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadBundle, saveBundle } from '../src/model/bundle.js';

const [finalRun, validatedRun, name] = process.argv.slice(2);
if (!finalRun || !validatedRun || !name) {
  console.error('usage: ship-model.ts FINAL_RUN VALIDATED_RUN NAME');
  process.exit(2);
}
interface Scores { precision: number; recall: number; f1: number; support: number }
const evaluation = JSON.parse(await readFile(join(validatedRun, 'evaluation.json'), 'utf8')) as {
  accuracy: number; total: number; bestEpoch: number; classes: string[]; confusion: number[][];
  perClass: (Scores & { name: string })[]; macroAvg: Scores; weightedAvg: Scores;
  calibration: { temperature: number; eceBefore: number; eceAfter: number };
};
const validatedConfig = JSON.parse(await readFile(join(validatedRun, 'config.json'), 'utf8')) as Record<string, unknown>;
const finalConfig = JSON.parse(await readFile(join(finalRun, 'config.json'), 'utf8')) as Record<string, unknown>;
const report = (await readFile(join(validatedRun, 'evaluation.txt'), 'utf8')).trim();
const bundle = await loadBundle(join(finalRun, 'model'));
const out = resolve('models', name);
const validation = {
  split: 'stratified 80/20, seed 42 (632 train / 158 validation images)',
  accuracy: evaluation.accuracy,
  macroF1: evaluation.macroAvg.f1,
  confusion: evaluation.confusion,
  classes: evaluation.classes,
  bestEpoch: evaluation.bestEpoch,
  calibration: evaluation.calibration,
};
await saveBundle(out, {
  graph: bundle.graph,
  manifest: {
    ...bundle.manifest,
    weightsDtype: 'float16',
    info: { ...bundle.manifest.info, trainedOn: 'all 790 images of the phones set', validation },
  },
});

const m = bundle.manifest;
const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const card = `# phoneside model card: \`${name}\`

| | |
|---|---|
| task | photo -> \`${m.classes.join('` / `')}\` (front of a mobile phone, its back, anything else) |
| backbone | ${m.backbone.id} (ImageNet, Keras weights from \`${m.backbone.weightsSource}\`, sha256 digest \`${m.backbone.weightsSha256.slice(0, 16)}…\`) |
| trained layers | ${m.topBlocks} top backbone block(s) above \`${m.backbone.cut}\` + head (GAP -> FC ${m.head.units[0]} -> BN -> PReLU -> Dropout ${m.head.dropout} -> FC ${m.head.units[1]} -> BN -> PReLU -> Dropout -> FC ${m.classes.length}) |
| input | ${m.preprocessing.size}x${m.preprocessing.size} ${m.preprocessing.channelOrder}, resize '${m.preprocessing.resize}', (x - [${m.preprocessing.mean.join(', ')}]) / [${m.preprocessing.std.join(', ')}] |
| temperature | ${m.temperature} (fitted on the validation split of the validated run) |
| weights file | float16, ${bundle.graph.nodes.reduce((a, n) => a + Object.values(n.weights).reduce((s, w) => s + w.data.length, 0), 0).toLocaleString('en')} parameters; the frozen trunk is rebuilt from the backbone's own weights |

## Data
The phones set of this project (790 hand-labelled JPEGs: front 319, back 231, none 240; real photos,
mostly of phones held in a hand, product renders on white, and 'none' look-alikes and everyday
objects; see the set's SOURCES.md). This model was trained on **all 790 images** for
${String(finalConfig['epochs'])} epochs (the best epoch of the validated run), with ${String(finalConfig['views'])} cached trunk views per image
(1 clean + ${Number(finalConfig['views']) - 1} augmented: crop, rotation incl. 90° turns, flip, brightness, contrast, hue, saturation).

## Recipe
Focal loss (gamma ${String(finalConfig['gamma'])}), ${String(finalConfig['optimizer'])} (lr ${String(finalConfig['lr'])}, backbone blocks x${String(finalConfig['topLrScale'])}, weight decay ${String(finalConfig['weightDecay'])}),
batch ${String(finalConfig['batchSize'])}, seed ${String(finalConfig['seed'])}. Command: \`phoneside train DATA --backbone ${m.backbone.family} --val-fraction 0 --epochs ${String(finalConfig['epochs'])} --temperature ${m.temperature}\`.

## Validation (the same recipe, trained on 80%, measured on the held-out 20%)
${validation.split}; early stopping on validation loss (patience ${String(validatedConfig['patience'])}), best epoch ${evaluation.bestEpoch}.
Accuracy **${pct(evaluation.accuracy)}**, macro F1 **${evaluation.macroAvg.f1.toFixed(4)}**; ECE ${evaluation.calibration.eceBefore.toFixed(4)} before and
${evaluation.calibration.eceAfter.toFixed(4)} after temperature scaling (T = ${evaluation.calibration.temperature.toFixed(3)}).

\`\`\`
${report}
\`\`\`

The model shipped here saw those 158 validation images in training, so its own accuracy on them is
not a fair figure; the numbers above are the honest estimate for new photos like these.

## Known limits
- With 158 validation images, one image is 0.63 points of accuracy; a 95% interval around
  ${pct(evaluation.accuracy)} is roughly ±${(196 * Math.sqrt((evaluation.accuracy * (1 - evaluation.accuracy)) / evaluation.total)).toFixed(1)} points.
- Most errors are front vs none (tablets, e-readers and device renders called 'front', dark or
  cracked screens called 'none') and front vs back of product renders on white.
- Real front/back photos come mostly from one source with similar backgrounds; hard look-alikes
  (TVs, monitors, consoles, mirrors, power banks) are rare in the training data.
- Photos are squashed to a square: extreme aspect ratios (panoramas, long strips) are out of domain.
`;
await writeFile(join(out, 'MODEL_CARD.md'), card);
console.log(`shipped ${name}: ${out}`);
