/**
 * `phoneside compare MODEL... --data DIR`: models side by side on the same images, as a terminal
 * table, JSON (--json) or a self-contained HTML page (--html).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { compareModels } from '../eval/compare.js';
import { formatComparisonTable } from '../eval/compare-format.js';
import { reportToJSON } from '../eval/evaluation-report.js';
import { CommandUsageError, intOpt, isUsageError, usage, type CliIO, applyEnvOptions, applyWeightsOption, ENV_OPTIONS } from './options.js';

export const COMPARE_HELP = `phoneside compare MODEL [MODEL...] --data DIR [options]

Evaluates every MODEL (run folder, bundle, ensemble, .onnx file or shipped model name) on the same labelled
images and prints them side by side: accuracy, macro and per-class F1, average precision, ECE,
parameters, size on disk, single-image latency and batched throughput.
  --data DIR             labelled images (one folder per class) (required)
  --subset val|train     only images in that subset of EVERY model's split.json (for val: images
                         none of the runs trained on); models without a split.json are refused
  --html FILE            also write a self-contained HTML page (tables, charts, confusion matrices,
                         reliability diagrams, images every model gets wrong)
  --json                 print JSON instead (schema phoneside.comparison/1, docs/json-reports.md)
  --latency-runs N       timed single-image calls per model (default 20, after 2 warm-ups)
  --batch-size N         images per batch in the evaluation pass (default 16)
  --threads N            ONNX Runtime threads (default: all cores)
  --tta                  test-time augmentation (image + mirror image, logits averaged) for every
                         model of this run (models whose manifest asks for it use it anyway)
  --weights [ID=]PATH    backbone ImageNet weights: ID=PATH for one backbone (e.g.
                         mobilenet_v2_0.35=../weights), a bare PATH for every model; repeatable
  --cache-dir DIR, --offline
`;

export async function cmdCompare(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let parsed;
  let opts: Parameters<typeof compareModels>[2];
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        data: { type: 'string' },
        subset: { type: 'string' },
        html: { type: 'string' },
        json: { type: 'boolean' },
        'latency-runs': { type: 'string' },
        'batch-size': { type: 'string' },
        threads: { type: 'string' },
        tta: { type: 'boolean' },
        weights: { type: 'string', multiple: true },
        ...ENV_OPTIONS,
        help: { type: 'boolean', short: 'h' },
      },
    });
    const v = parsed.values;
    if (v.help) {
      io.stdout.write(COMPARE_HELP);
      return 0;
    }
    if (parsed.positionals.length === 0) throw new CommandUsageError('compare needs at least one MODEL');
    if (typeof v.data !== 'string' || v.data === '') throw new CommandUsageError('compare needs --data DIR (the labelled images to compare on)');
    if (v.subset !== undefined && v.subset !== 'val' && v.subset !== 'train') throw new CommandUsageError(`--subset must be val or train, got '${v.subset}'`);
    if (v.html === '') throw new CommandUsageError('--html needs a file name');
    const shared = applyWeightsOption(v);
    const latencyRuns = intOpt(v, 'latency-runs', 1);
    const batchSize = intOpt(v, 'batch-size', 1);
    const threads = intOpt(v, 'threads', 1);
    opts = {
      ...(v.subset ? { subset: v.subset } : {}),
      ...(latencyRuns ? { latencyRuns } : {}),
      ...(batchSize ? { batchSize } : {}),
      ...(threads ? { threads } : {}),
      ...(shared ? { weights: shared } : {}),
      ...(v.tta ? { tta: true } : {}),
      progress: io.stderr,
    };
  } catch (err) {
    if (isUsageError(err)) {
      return usage(io, err, 'compare');
    }
    throw err;
  }
  const v = parsed.values;
  applyEnvOptions(v);
  const dataDir = v.data as string;
  const report = await compareModels(parsed.positionals, dataDir, opts);
  if (typeof v.html === 'string') {
    const { makeThumbnails } = await import('../eval/thumbnails.js');
    const { renderComparisonHtml } = await import('../eval/html/compare-page.js');
    const thumbnails = await makeThumbnails(report.agreement.allWrong.map((p) => ({ key: p, file: join(dataDir, p) })));
    await writeFile(v.html, renderComparisonHtml(report, { thumbnails }));
    io.stderr.write(`wrote ${v.html}\n`);
  }
  if (v.json) {
    const { reports: _full, ...summary } = report;
    io.stdout.write(reportToJSON(summary));
  } else {
    io.stdout.write(formatComparisonTable(report));
  }
  return 0;
}
