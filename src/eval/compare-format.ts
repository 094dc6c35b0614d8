/** Rows of a model comparison, shared by the terminal table and the HTML page. */
import type { ComparisonReport, ModelComparison } from './compare.js';

export interface ComparisonRow {
  label: string;
  values: (number | null)[];
  format: (v: number) => string;
  /** Which way is better; undefined: not ranked. */
  better?: 'higher' | 'lower';
}

const f4 = (v: number): string => v.toFixed(4);
const mb = (v: number): string => `${(v / 1e6).toFixed(1)} MB`;
const millions = (v: number): string => `${(v / 1e6).toFixed(2)} M`;

export function comparisonRows(r: ComparisonReport): ComparisonRow[] {
  const col = (f: (m: ModelComparison) => number | null): (number | null)[] => r.models.map(f);
  return [
    { label: 'accuracy', values: col((m) => m.accuracy), format: f4, better: 'higher' },
    { label: 'macro F1', values: col((m) => m.macroF1), format: f4, better: 'higher' },
    ...r.classes.map((c): ComparisonRow => ({ label: `F1 ${c}`, values: col((m) => m.perClassF1[c] ?? null), format: f4, better: 'higher' })),
    { label: 'macro average precision', values: col((m) => m.macroAveragePrecision), format: f4, better: 'higher' },
    { label: 'ECE (as deployed)', values: col((m) => m.ece), format: f4, better: 'lower' },
    { label: 'ECE at T = 1', values: col((m) => m.eceAtT1), format: f4, better: 'lower' },
    { label: 'temperature', values: col((m) => m.temperature), format: (v) => v.toFixed(3) },
    { label: 'mistakes', values: col((m) => m.mistakes), format: String, better: 'lower' },
    { label: 'parameters (whole ONNX)', values: col((m) => m.parameters.total), format: millions, better: 'lower' },
    { label: 'parameters (trained layers)', values: col((m) => m.parameters.trained), format: millions },
    { label: 'size: bundle on disk', values: col((m) => m.sizeBytes.bundle), format: mb, better: 'lower' },
    { label: 'size: whole ONNX file', values: col((m) => m.sizeBytes.onnx), format: mb, better: 'lower' },
    { label: 'latency p50, 1 image (ms)', values: col((m) => m.latency.singleImageMsP50), format: (v) => v.toFixed(1), better: 'lower' },
    { label: 'latency p90, 1 image (ms)', values: col((m) => m.latency.singleImageMsP90), format: (v) => v.toFixed(1), better: 'lower' },
    { label: 'throughput (images/s, batched)', values: col((m) => m.latency.throughputImagesPerSecond), format: (v) => v.toFixed(1), better: 'higher' },
  ];
}

/** Index of the best value in a row (undefined when unranked, fewer than 2 values, or a tie). */
export function bestIndex(row: ComparisonRow): number | undefined {
  if (!row.better) return undefined;
  const vals = row.values.map((v, i) => ({ v, i })).filter((x): x is { v: number; i: number } => x.v !== null && Number.isFinite(x.v));
  if (vals.length < 2) return undefined;
  const sorted = vals.sort((a, b) => (row.better === 'higher' ? b.v - a.v : a.v - b.v));
  return row.format(sorted[0]!.v) === row.format(sorted[1]!.v) ? undefined : sorted[0]!.i;
}

/** The comparison as a plain-text table, models as columns; `*` marks the best of each ranked row. */
export function formatComparisonTable(r: ComparisonReport): string {
  const rows = comparisonRows(r);
  const header = ['', ...r.models.map((m) => m.name)];
  const body = [
    ['backbone', ...r.models.map((m) => m.backbone)],
    ...rows.map((row) => {
      const best = bestIndex(row);
      return [row.label, ...row.values.map((v, i) => (v === null || !Number.isFinite(v) ? '-' : row.format(v) + (i === best ? ' *' : '')))];
    }),
  ];
  const widths = header.map((_, c) => Math.max(...[header, ...body].map((line) => line[c]!.length)));
  const line = (cells: string[]): string => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ') + '\n';
  const subset = r.data.subset === 'all' ? 'all images' : `the ${r.data.subset} subset of every model's split`;
  return (
    `${r.data.images} images of ${r.data.dir} (${subset}); * = best\n\n` +
    line(header) +
    body.map(line).join('') +
    `\nmodels disagree on ${r.agreement.disagreements} images; ${r.agreement.allWrong.length} images every model gets wrong\n`
  );
}
