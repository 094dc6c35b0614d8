/**
 * `phoneside predict [--model M] PATH...`: classifies files, folders and glob patterns and prints
 * one row per image (table, JSON lines or CSV) plus a summary. Inference only: nothing here (or
 * below) imports tfjs or the training code.
 */
import { csvField } from '../util/csv.js';
import { parseArgs } from 'node:util';
import type { Classifier } from '../infer/classifier.js';
import { expandInputs } from '../infer/inputs.js';
import { loadClassifier, NoDefaultModelError } from '../infer/load.js';
import { errorRow, predictFiles, UNCERTAIN, type PredictionRow } from '../infer/predict.js';
import { ProgressBar } from '../util/progress.js';
import { CommandUsageError, isUsageError, numberOpt, usage, type CliIO, applyEnvOptions, applyWeightsOption, ENV_OPTIONS } from './options.js';

export const PREDICT_HELP = `phoneside predict [--model MODEL] PATH...

Classifies images: PATHs are files, folders (searched recursively for images) and glob patterns
(*, ?, ** — quote them to let phoneside expand them). One row per image: path, label,
probability per class, milliseconds; then a summary.
  --model MODEL          bundle, run or ensemble folder, or exported .onnx file (default: the model shipped with phoneside)
  --format F             table | jsonl | csv (default: table on a terminal, jsonl otherwise)
  --min-confidence X     answer "${UNCERTAIN}" when the top probability is below X (0..1)
  --no-thresholds        ignore the model's own per-class minimum confidences
  --batch-size N         images per inference call (default 8)
  --quiet                no progress bar, no summary
  --tta                  test-time augmentation: average the logits of each image and its mirror
                         image (one ONNX graph; on by default for a model whose manifest asks for it)
  --weights [ID=]PATH    the backbone's ImageNet weights (bundles and ensembles); ID=PATH for one
                         backbone (e.g. mobilenet_v2_0.35=DIR), as an ensemble of several needs
  --threads N            ONNX Runtime threads (default: all cores)
  --cache-dir DIR, --offline
Exit status: 0 when every image was classified, 1 when any failed, 2 for usage errors.
`;

type Format = 'table' | 'jsonl' | 'csv';

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

function jsonRow(r: PredictionRow): string {
  const probabilities = r.probabilities && Object.fromEntries(Object.entries(r.probabilities).map(([k, v]) => [k, round(v, 6)]));
  const o: PredictionRow = {
    path: r.path,
    label: r.label,
    top: r.top,
    confidence: r.confidence === null ? null : round(r.confidence, 6),
    probabilities,
    ms: round(r.ms, 1),
    ...(r.error !== undefined ? { error: r.error } : {}),
  };
  return JSON.stringify(o);
}

export { csvField };

function csvHeader(classes: readonly string[]): string {
  return ['path', 'label', 'top', 'confidence', ...classes.map((c) => `prob_${c}`), 'ms', 'error'].map(csvField).join(',');
}

function csvRow(r: PredictionRow, classes: readonly string[]): string {
  const num = (x: number | null | undefined, d: number): string => (x === null || x === undefined ? '' : String(round(x, d)));
  return [
    r.path,
    r.label ?? '',
    r.top ?? '',
    num(r.confidence, 6),
    ...classes.map((c) => num(r.probabilities?.[c], 6)),
    num(r.ms, 1),
    r.error ?? '',
  ]
    .map(csvField)
    .join(',');
}

/** Fixed-width table; widths come from all paths (known before the first row is printed). */
class Table {
  private readonly pathW: number;
  private readonly labelW: number;
  private readonly probW: number[];

  constructor(
    private readonly classes: readonly string[],
    paths: readonly string[],
  ) {
    this.pathW = Math.min(60, Math.max(4, ...paths.map((p) => p.length)));
    this.labelW = Math.max(5, UNCERTAIN.length, ...classes.map((c) => c.length));
    this.probW = classes.map((c) => Math.max(5, c.length));
  }

  private path(p: string): string {
    return (p.length > this.pathW ? '…' + p.slice(p.length - this.pathW + 1) : p).padEnd(this.pathW);
  }

  header(): string {
    const cols = [this.path('path'), 'label'.padEnd(this.labelW), ' conf', ...this.classes.map((c, i) => c.padStart(this.probW[i]!)), '     ms'];
    return cols.join('  ').trimEnd();
  }

  row(r: PredictionRow): string {
    if (r.error !== undefined) return `${this.path(r.path)}  error: ${r.error}`;
    const cols = [
      this.path(r.path),
      (r.label ?? '').padEnd(this.labelW),
      r.confidence!.toFixed(3),
      ...this.classes.map((c, i) => r.probabilities![c]!.toFixed(3).padStart(this.probW[i]!)),
      r.ms.toFixed(1).padStart(7),
    ];
    return cols.join('  ');
  }
}

/** "12 images in 3.1s (3.9 img/s): front 5, back 4, none 2, uncertain 1; 1 error". */
export function summaryLine(rows: readonly PredictionRow[], classes: readonly string[], seconds: number): string {
  const counts = new Map<string, number>([...classes, UNCERTAIN].map((c) => [c, 0]));
  let errors = 0;
  for (const r of rows) {
    if (r.error !== undefined || r.label === null) errors++;
    else counts.set(r.label, (counts.get(r.label) ?? 0) + 1);
  }
  const done = rows.length - errors;
  const rate = seconds > 0 ? `${(done / seconds).toFixed(1)} img/s` : '- img/s';
  const labels = [...counts].map(([c, n]) => `${c} ${n}`).join(', ');
  return `${rows.length} image${rows.length === 1 ? '' : 's'} in ${seconds.toFixed(seconds < 10 ? 2 : 1)}s (${rate}): ${labels}; ${errors} error${errors === 1 ? '' : 's'}`;
}

function parse(args: string[]): { v: Record<string, string | boolean | string[] | undefined>; paths: string[] } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      model: { type: 'string', short: 'm' },
      format: { type: 'string' },
      'min-confidence': { type: 'string' },
      'no-thresholds': { type: 'boolean' },
      'batch-size': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      tta: { type: 'boolean' },
      weights: { type: 'string', multiple: true },
      threads: { type: 'string' },
      ...ENV_OPTIONS,
      help: { type: 'boolean', short: 'h' },
    },
  });
  return { v: values, paths: positionals };
}

export async function cmdPredict(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let v: Record<string, string | boolean | string[] | undefined>;
  let paths: string[];
  let format: Format;
  let minConfidence: number | undefined;
  let batchSize: number;
  let threads: number | undefined;
  let weights: string | undefined;
  try {
    ({ v, paths } = parse(args));
    if (v['help']) {
      io.stdout.write(PREDICT_HELP);
      return 0;
    }
    const f = v['format'] ?? (io.stdout.isTTY ? 'table' : 'jsonl');
    if (f !== 'table' && f !== 'jsonl' && f !== 'csv') throw new CommandUsageError(`--format must be table, jsonl or csv, got '${String(f)}'`);
    format = f;
    minConfidence = numberOpt(v, 'min-confidence', (n) => n >= 0 && n <= 1, 'a number from 0 to 1');
    batchSize = numberOpt(v, 'batch-size', (n) => Number.isInteger(n) && n >= 1, 'a positive integer') ?? 8;
    threads = numberOpt(v, 'threads', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
    weights = applyWeightsOption(v);
    if (paths.length === 0) throw new CommandUsageError('predict needs at least one PATH (file, folder or glob pattern)');
  } catch (err) {
    if (isUsageError(err)) return usage(io, err, 'predict');
    throw err;
  }
  applyEnvOptions(v);

  const { files, problems } = await expandInputs(paths);
  if (files.length === 0 && problems.length === 0) return usage(io, new Error(`no image files found in ${paths.join(' ')}`), 'predict');

  let clf: Classifier;
  try {
    clf = await loadClassifier(typeof v['model'] === 'string' ? v['model'] : undefined, {
      ...(weights !== undefined ? { weights } : {}),
      ...(threads !== undefined ? { threads } : {}),
      ...(v['tta'] ? { tta: true } : {}),
    });
  } catch (err) {
    if (err instanceof NoDefaultModelError) return usage(io, err, 'predict');
    throw err;
  }
  try {
    const classes = clf.classes;
    const rows: PredictionRow[] = [];
    const table = format === 'table' ? new Table(classes, [...problems.map((p) => p.path), ...files]) : undefined;
    const bar =
      !v['quiet'] && files.length > 20 && io.stderr.isTTY
        ? new ProgressBar({ total: files.length, label: 'predict', stream: io.stderr, unit: 'img' })
        : undefined;
    const out = (line: string): void => {
      // Keep the table readable when the progress bar shares the terminal.
      if (bar && io.stdout.isTTY) io.stderr.write('\r\x1b[K');
      io.stdout.write(line + '\n');
    };
    const emit = (r: PredictionRow): void => {
      rows.push(r);
      if (format === 'jsonl') out(jsonRow(r));
      else if (format === 'csv') out(csvRow(r, classes));
      else out(table!.row(r));
    };
    if (table) out(table.header());
    else if (format === 'csv') out(csvHeader(classes));
    for (const p of problems) emit(errorRow(p.path, p.error));
    const t0 = performance.now();
    let done = 0;
    for await (const r of predictFiles(clf, files, {
      batchSize,
      ...(minConfidence !== undefined ? { minConfidence } : {}),
      ...(v['no-thresholds'] ? { thresholds: {} } : {}),
    })) {
      emit(r);
      bar?.update(++done);
    }
    bar?.done();
    const seconds = (performance.now() - t0) / 1000;
    if (!v['quiet']) {
      const summary = summaryLine(rows, classes, seconds);
      if (table) io.stdout.write(`\n${summary}\n`);
      else io.stderr.write(`${summary}\n`);
    }
    return rows.some((r) => r.error !== undefined) ? 1 : 0;
  } finally {
    await clf.dispose();
  }
}
