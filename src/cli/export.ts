/**
 * `phoneside export MODEL --out model.onnx`: the whole classifier (or ensemble) as one ONNX file
 * with its classes and preprocessing in the file's metadata (see infer/export.ts).
 */
import { parseArgs } from 'node:util';
import { exportClassifier } from '../infer/export.js';
import { CommandUsageError, isUsageError, usage, type CliIO, type OptionValues, applyEnvOptions, applyWeightsOption, ENV_OPTIONS } from './options.js';

export const EXPORT_HELP = `phoneside export MODEL --out FILE.onnx [options]

Writes the whole classifier (backbone trunk + trained layers + softmax, temperature folded) as one
ONNX file: input 'input' [N, 3, H, W] float32 (normalised pixels, NCHW), output 'output'
[N, classes] probabilities. Its metadata_props hold phoneside.format_version, classes,
preprocessing, temperature, thresholds, backbone and created_at (and tta, ensemble when used);
'phoneside predict --model FILE.onnx' and Classifier.fromOnnx read them. MODEL is a bundle, run
or ensemble folder (an ensemble's input is raw RGB pixels 0..255: mean 0, std 1; each member
normalises them inside the graph).
  --out FILE             the .onnx file to write (required)
  --tta                  build test-time augmentation into the graph (the image and its mirror
                         image, logits averaged); on by default when the model's manifest asks for it
  --weights [ID=]PATH    the backbone's ImageNet weights, instead of the cache/download; ID=PATH
                         for one backbone (repeatable: an ensemble of several backbones)
  --cache-dir DIR, --offline
`;

export async function cmdExport(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let out: string;
  let model: string;
  let v: OptionValues;
  let weights: string | undefined;
  try {
    const parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        tta: { type: 'boolean' },
        weights: { type: 'string', multiple: true },
        ...ENV_OPTIONS,
        help: { type: 'boolean', short: 'h' },
      },
    });
    v = parsed.values;
    if (v['help']) {
      io.stdout.write(EXPORT_HELP);
      return 0;
    }
    if (parsed.positionals.length !== 1) throw new CommandUsageError('export takes exactly one MODEL (a run, bundle or ensemble folder)');
    if (typeof v['out'] !== 'string' || v['out'] === '') throw new CommandUsageError('export needs --out FILE.onnx');
    model = parsed.positionals[0]!;
    out = v['out'];
    weights = applyWeightsOption(v);
  } catch (err) {
    if (isUsageError(err)) {
      return usage(io, err, 'export');
    }
    throw err;
  }
  applyEnvOptions(v);
  const r = await exportClassifier(model, out, { ...(weights !== undefined ? { weights } : {}), ...(v['tta'] ? { tta: true } : {}) });
  const s = r.info.preprocessing.size;
  io.stdout.write(
    `wrote ${r.path} (${(r.bytes / 1e6).toFixed(1)} MB): ${r.info.backbone.id}${r.info.tta ? `, tta ${r.info.tta}` : ''}, classes ${r.info.classes.join(', ')}; ` +
      `input 'input' [N, 3, ${s}, ${s}] float32${r.info.ensemble ? ' (raw RGB pixels 0..255)' : ''}, output 'output' [N, ${r.info.classes.length}] probabilities\n`,
  );
  return 0;
}
