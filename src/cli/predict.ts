/**
 * `phoneside predict [--model M] PATH...`: classifies files, folders and glob patterns and prints
 * one row per image (table, JSON lines or CSV) plus a summary. Inference only: nothing here (or
 * below) imports tfjs or the training code.
 *
 * File names are data: the table escapes control characters in them (a newline or tab in a name
 * stays on its row: \n, \t), JSON lines and CSV carry them exactly (JSON escapes, RFC 4180
 * quoting), and a name that is not valid UTF-8 is shown with its bad bytes as \xHH everywhere.
 */
import { csvField } from '../util/csv.js';
import { displayPath, escapeControl, type FsPath } from '../util/list-dir.js';
import { Classifier, LOAD_KEYS } from '../infer/classifier.js';
import { expandInputs, type InputProblem } from '../infer/inputs.js';
import { errorRow, predictFiles, UNCERTAIN, type PredictionRow, type PredictOptions } from '../infer/predict.js';
import { PREDICT } from '../options/infer.js';
import { ProgressBar } from '../util/progress.js';
import { applyModelWeights, CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';
import { definedOnly } from '../util/defined.js';

type Format = 'table' | 'jsonl' | 'csv';

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

function jsonRow(r: PredictionRow): string {
  const probabilities = r.probabilities && Object.fromEntries(Object.entries(r.probabilities).map(([k, v]) => [k, round(v, 6)]));
  const o: PredictionRow = {
    path: r.path,
    label: r.label,
    predicted: r.predicted,
    confidence: r.confidence === null ? null : round(r.confidence, 6),
    probabilities,
    ms: round(r.ms, 1),
    ...(r.error !== undefined ? { error: r.error } : {}),
  };
  return JSON.stringify(o);
}

export { csvField };

function csvHeader(classes: readonly string[]): string {
  return ['path', 'label', 'predicted', 'confidence', ...classes.map((c) => `prob_${c}`), 'ms', 'error'].map(csvField).join(',');
}

function csvRow(r: PredictionRow, classes: readonly string[]): string {
  const num = (x: number | null | undefined, d: number): string => (x === null || x === undefined ? '' : String(round(x, d)));
  return [
    r.path,
    r.label ?? '',
    r.predicted ?? '',
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
    this.pathW = Math.min(60, Math.max(4, ...paths.map((p) => escapeControl(p).length)));
    this.labelW = Math.max(5, UNCERTAIN.length, ...classes.map((c) => c.length));
    this.probW = classes.map((c) => Math.max(5, c.length));
  }

  private path(raw: string): string {
    const p = escapeControl(raw);
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

export function cmdPredict(args: string[], io: CliIO): Promise<number> {
  return runVerb(PREDICT, args, io, async ({ values, positionals: paths }) => {
    const format: Format = values.format ?? (io.stdout.isTTY ? 'table' : 'jsonl');
    const { files, problems } = await expandInputs(paths);
    if (files.length === 0 && problems.length === 0) throw new CommandUsageError(`no image files found in ${escapeControl(paths.join(' '))}`);
    await applyModelWeights(values.weights, [values.model]);
    const { model, tta, threads, precision, calibration, gateData, force, ...decision } = libraryOptions(PREDICT.options, values);
    const clf = await Classifier.load(model, definedOnly({ tta, threads, precision, calibration, gateData, force }, LOAD_KEYS));
    try {
      return await printPredictions(clf, files, problems, { ...decision, format, quiet: values.quiet === true }, io);
    } finally {
      await clf.dispose();
    }
  });
}

/** Prints one row per image as it comes, then the summary; 1 when any image failed. */
async function printPredictions(
  clf: Classifier,
  files: readonly FsPath[],
  problems: readonly InputProblem[],
  opts: PredictOptions & { format: Format; quiet: boolean },
  io: CliIO,
): Promise<number> {
  const { format, quiet, ...predictOptions } = opts;
  const classes = clf.classes;
  const rows: PredictionRow[] = [];
  const table = format === 'table' ? new Table(classes, [...problems.map((p) => p.path), ...files.map(displayPath)]) : undefined;
  const bar = !quiet && files.length > 20 && io.stderr.isTTY ? new ProgressBar({ total: files.length, label: 'predict', stream: io.stderr, unit: 'img' }) : undefined;
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
  for await (const r of predictFiles(clf, files, predictOptions)) {
    emit(r);
    bar?.update(++done);
  }
  bar?.done();
  const seconds = (performance.now() - t0) / 1000;
  if (!quiet) {
    const summary = summaryLine(rows, classes, seconds);
    if (table) io.stdout.write(`\n${summary}\n`);
    else io.stderr.write(`${summary}\n`);
  }
  return rows.some((r) => r.error !== undefined) ? 1 : 0;
}
