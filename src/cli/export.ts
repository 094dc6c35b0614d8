/**
 * `phoneside export MODEL --out model.onnx`: the whole classifier as one ONNX file with its
 * classes and preprocessing in the file's metadata (see infer/export.ts).
 */
import { parseArgs } from 'node:util';
import { exportClassifier } from '../infer/export.js';
import { CommandUsageError, isUsageError, usage, type CliIO, applyEnvOptions, ENV_OPTIONS } from './options.js';

export const EXPORT_HELP = `phoneside export MODEL --out FILE.onnx [options]

Writes the whole classifier (backbone trunk + trained layers + softmax, temperature folded) as one
ONNX file: input 'input' [N, 3, H, W] float32 (normalised pixels, NCHW), output 'output'
[N, classes] probabilities. Its metadata_props hold phoneside.format_version, classes,
preprocessing, temperature, thresholds, backbone and created_at; 'phoneside predict --model
FILE.onnx' and Classifier.fromOnnx read them.
  --out FILE             the .onnx file to write (required)
  --weights PATH         the backbone's ImageNet weights, instead of the cache/download
  --cache-dir DIR, --offline
`;

export async function cmdExport(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let out: string;
  let model: string;
  let v: Record<string, string | boolean | undefined>;
  try {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        weights: { type: 'string' },
        ...ENV_OPTIONS,
        help: { type: 'boolean', short: 'h' },
      },
    });
    v = parsed.values;
    if (v['help']) {
      io.stdout.write(EXPORT_HELP);
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new CommandUsageError('export takes exactly one MODEL (a run or bundle folder)');
    if (typeof v['out'] !== 'string' || v['out'] === '') throw new CommandUsageError('export needs --out FILE.onnx');
    model = parsed.positionals[0]!;
    out = v['out'];
  } catch (err) {
    if (isUsageError(err)) {
      return usage(io, err, 'export');
    }
    throw err;
  }
  applyEnvOptions(v);
  const r = await exportClassifier(model, out, typeof v['weights'] === 'string' ? { weights: v['weights'] } : {});
  const s = r.info.preprocessing.size;
  io.stdout.write(
    `wrote ${r.path} (${(r.bytes / 1e6).toFixed(1)} MB): ${r.info.backbone.id}, classes ${r.info.classes.join(', ')}; ` +
      `input 'input' [N, 3, ${s}, ${s}] float32, output 'output' [N, ${r.info.classes.length}] probabilities\n`,
  );
  return 0;
}
