/**
 * Writes models/<name>/int8.json for each shipped model: its int8 quantization (activation ranges
 * calibrated on 256 photos of ../shared/datasets/phones, convolutions kept in fp32 if the gate
 * needs it) with the gate figures measured on every photo of the set, so `--precision int8` on a
 * shipped model needs no photos on the user's machine. Refuses a model that fails the gate.
 *   PHONESIDE_WEIGHTS_MOBILENET_V2_035=../shared/weights/mobilenet_v2_0.35_224 node --import tsx scripts/ship-int8.ts [NAME...]
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { locateClassifierOnnx } from '../src/infer/classifier.js';
import { resolveModelPath } from '../src/infer/load.js';
import { formatGate, INT8_RECIPE_FILE, int8Recipe, quantizeClassifier } from '../src/infer/quantize.js';

const names = process.argv.length > 2 ? process.argv.slice(2) : ['resnet50', 'mobilenet_v2', 'ensemble'];
for (const name of names) {
  const dir = resolveModelPath(name);
  const found = await locateClassifierOnnx(dir);
  const fp32 = 'path' in found.onnx ? new Uint8Array(await readFile(found.onnx.path)) : found.onnx.bytes;
  const t0 = Date.now();
  const q = await quantizeClassifier(fp32, found.info, { log: (line) => console.error(`${name}: ${line}`) });
  // Paths in the record are the maker's; keep only the data set's name.
  const recipe = int8Recipe(fp32, q);
  recipe.record = {
    ...recipe.record,
    calibration: { ...recipe.record.calibration, data: 'phones (shared/datasets/phones)' },
    ...(recipe.record.gate ? { gate: { ...recipe.record.gate, data: 'phones (shared/datasets/phones)' } } : {}),
  };
  await writeFile(join(dir, INT8_RECIPE_FILE), `${JSON.stringify(recipe, null, 1)}\n`);
  console.log(`${name}: ${formatGate(q.record.gate!)}; ${q.record.keptFp32?.length ?? 0} convolutions kept in fp32 by the search; ${Object.values(q.record.summary.quantized).reduce((a, b) => a + b, 0)} quantized; ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
