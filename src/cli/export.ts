/**
 * `phoneside export [--model MODEL] --out model.onnx`: the whole classifier (or ensemble) as one
 * ONNX file with its classes and preprocessing in the file's metadata (see infer/export.ts).
 */
import { exportClassifier } from '../infer/export.js';
import { formatGate } from '../infer/quantize.js';
import { EXPORT } from '../options/infer.js';
import { applyModelWeights, CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

export function cmdExport(args: string[], io: CliIO): Promise<number> {
  return runVerb(EXPORT, args, io, async ({ values, positionals }) => {
    // The older form `export MODEL --out FILE` still works.
    if (positionals.length === 1 && values.model !== undefined) throw new CommandUsageError('give the model once: --model MODEL or export MODEL');
    const model = positionals[0] ?? values.model;
    await applyModelWeights(values.weights, [model]);
    const r = await exportClassifier({ ...libraryOptions(EXPORT.options, values), ...(model !== undefined ? { model } : {}) }, (line) => io.stderr.write(`export: ${line}\n`));
    const s = r.info.preprocessing.size;
    io.stdout.write(
      `wrote ${r.path} (${(r.bytes / 1e6).toFixed(1)} MB): ${r.info.backbone.id}${r.info.tta ? `, tta ${r.info.tta}` : ''}, classes ${r.info.classes.join(', ')}; ` +
        `input 'input' [N, 3, ${s}, ${s}] float32${r.info.ensemble ? ' (raw RGB pixels 0..255)' : ''}, output 'output' [N, ${r.info.classes.length}] probabilities\n`,
    );
    const q = r.quantization;
    if (q) {
      const n = Object.entries(q.summary.quantized).map(([op, k]) => `${k} ${op}`).join(', ');
      io.stdout.write(`int8: ${n} quantized (${q.summary.keptFloat} kept fp32), calibrated on ${q.calibration.images} images of ${q.calibration.data}\n`);
      for (const a of (q.attempts ?? []).filter((a) => !a.passed)) {
        io.stdout.write(`int8 with the ${a.keptFp32} most sensitive convolutions in fp32: agreement ${(100 * a.agreement).toFixed(2)}%, gate failed\n`);
      }
      io.stdout.write(q.gate ? `int8 gate ${q.gate.passed ? 'passed' : 'FAILED (written because of --force)'}: ${formatGate(q.gate)}\n` : 'int8 gate not run (no gate data; written because of --force)\n');
    }
    return 0;
  });
}
