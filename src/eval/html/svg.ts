/**
 * Inline SVG charts for self-contained HTML reports: no scripts, no fonts or styles fetched,
 * text drawn by the browser's default sans-serif. Every string that reaches markup goes through esc().
 */
import type { ReliabilityBin } from '../curves.js';

export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Fixed-decimals number for labels ('–' for null/NaN). */
export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
}

export const pct = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(digits)}%`;

/** A colour-blind-safe palette (Okabe–Ito) for series. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];

/** Cells shaded by row-normalised rate: the diagonal blue, errors orange, counts and rates written in. */
export function confusionHeatmap(confusion: readonly (readonly number[])[], classes: readonly string[]): string {
  const n = classes.length;
  const cell = 96;
  const left = 110;
  const top = 70;
  const w = left + n * cell + 10;
  const h = top + n * cell + 10;
  let out = `<svg class="chart heatmap" role="img" aria-label="Confusion matrix" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" xmlns="http://www.w3.org/2000/svg">`;
  out += `<text x="${left + (n * cell) / 2}" y="16" text-anchor="middle" class="axis-title">predicted</text>`;
  out += `<text x="14" y="${top + (n * cell) / 2}" text-anchor="middle" class="axis-title" transform="rotate(-90 14 ${top + (n * cell) / 2})">true</text>`;
  classes.forEach((c, j) => {
    out += `<text x="${left + j * cell + cell / 2}" y="${top - 12}" text-anchor="middle">${esc(c)}</text>`;
  });
  confusion.forEach((row, t) => {
    const support = row.reduce((a, b) => a + b, 0);
    out += `<text x="${left - 8}" y="${top + t * cell + cell / 2 + 4}" text-anchor="end">${esc(classes[t]!)}</text>`;
    row.forEach((count, p) => {
      const rate = support ? count / support : 0;
      const diag = t === p;
      const fill = diag ? `rgba(0,114,178,${(0.08 + 0.92 * rate).toFixed(3)})` : `rgba(213,94,0,${(count ? 0.12 + 0.88 * Math.min(1, rate * 3) : 0.03).toFixed(3)})`;
      const dark = diag ? rate > 0.55 : rate * 3 > 0.55;
      const x = left + p * cell;
      const y = top + t * cell;
      out +=
        `<g class="cell${diag ? ' diag' : ''}" data-true="${esc(classes[t]!)}" data-pred="${esc(classes[p]!)}" data-count="${count}">` +
        `<title>true ${esc(classes[t]!)}, predicted ${esc(classes[p]!)}: ${count} of ${support} (${pct(rate)})</title>` +
        `<rect x="${x + 1}" y="${y + 1}" width="${cell - 2}" height="${cell - 2}" rx="4" fill="${fill}"/>` +
        `<text x="${x + cell / 2}" y="${y + cell / 2}" text-anchor="middle" class="count${dark ? ' on-dark' : ''}">${count}</text>` +
        `<text x="${x + cell / 2}" y="${y + cell / 2 + 20}" text-anchor="middle" class="rate${dark ? ' on-dark' : ''}">${pct(rate)}</text></g>`;
    });
  });
  return out + '</svg>';
}

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
  color?: string;
  dashed?: boolean;
  /** Draw as a step function (precision-recall curves). */
  step?: boolean;
  /** Draw a dot at each point. */
  dots?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Logarithmic y axis (learning rate). */
  yLog?: boolean;
  /** A vertical marker, e.g. the epoch whose weights were kept. */
  marker?: { x: number; label: string };
  /** Integer x ticks (epochs). */
  xIntegers?: boolean;
  width?: number;
  height?: number;
}

function ticks(lo: number, hi: number, count = 5): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Powers of ten in [lo, hi], with 2x and 5x steps added when that gives fewer than 3 ticks. */
function logTicks(lo: number, hi: number): number[] {
  const inRange = (v: number): boolean => v >= lo * 0.999 && v <= hi * 1.001;
  const decades: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) decades.push(e);
  const pow = decades.map((e) => Number((10 ** e).toPrecision(6))).filter(inRange);
  if (pow.length >= 3) return pow;
  return decades.flatMap((e) => [1, 2, 5].map((k) => Number((k * 10 ** e).toPrecision(6)))).filter(inRange);
}

function tickLabel(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

/** Line chart with axes, ticks, grid, legend; points outside finite values are skipped. */
export function lineChart(series: readonly Series[], o: LineChartOptions): string {
  const width = o.width ?? 420;
  const height = o.height ?? 280;
  const m = { l: 56, r: 14, t: 26, b: 64 };
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.yLog || y > 0));
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  let [x0, x1] = o.xDomain ?? [Math.min(...xs, Infinity), Math.max(...xs, -Infinity)];
  let [y0, y1] = o.yDomain ?? [Math.min(...ys, Infinity), Math.max(...ys, -Infinity)];
  if (!Number.isFinite(x0) || !Number.isFinite(x1)) [x0, x1] = [0, 1];
  if (!Number.isFinite(y0) || !Number.isFinite(y1)) [y0, y1] = o.yLog ? [0.1, 1] : [0, 1];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = o.yLog ? [y0 / 10, y1 * 10] : [y0 - 1, y1 + 1];
  if (!o.yDomain && !o.yLog) {
    const pad = (y1 - y0) * 0.05;
    [y0, y1] = [y0 - pad, y1 + pad];
  }
  const ly = (y: number): number => (o.yLog ? Math.log10(y) : y);
  const sx = (x: number): number => m.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => m.t + ph - ((ly(y) - ly(y0)) / (ly(y1) - ly(y0))) * ph;
  let out = `<svg class="chart line" role="img" aria-label="${esc(o.title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">`;
  out += `<text x="${m.l}" y="16" class="chart-title">${esc(o.title)}</text>`;
  const yt = o.yLog ? logTicks(y0, y1) : ticks(y0, y1);
  for (const v of yt) {
    out += `<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(v).toFixed(1)}" y2="${sy(v).toFixed(1)}" class="grid"/>`;
    out += `<text x="${m.l - 6}" y="${(sy(v) + 4).toFixed(1)}" text-anchor="end" class="tick">${tickLabel(v)}</text>`;
  }
  const xt = ticks(x0, x1, o.xIntegers ? Math.min(10, Math.round(x1 - x0)) : 5).filter((v) => !o.xIntegers || Number.isInteger(v));
  for (const v of xt) out += `<text x="${sx(v).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" class="tick">${tickLabel(v)}</text>`;
  out += `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" class="frame"/>`;
  out += `<text x="${m.l + pw / 2}" y="${m.t + ph + 32}" text-anchor="middle" class="axis-title">${esc(o.xLabel)}</text>`;
  out += `<text x="12" y="${m.t + ph / 2}" text-anchor="middle" class="axis-title" transform="rotate(-90 12 ${m.t + ph / 2})">${esc(o.yLabel)}</text>`;
  if (o.marker && o.marker.x >= x0 && o.marker.x <= x1) {
    const x = sx(o.marker.x).toFixed(1);
    out += `<line x1="${x}" x2="${x}" y1="${m.t}" y2="${m.t + ph}" class="marker"/><text x="${Number(x) + 4}" y="${m.t + ph - 6}" class="tick">${esc(o.marker.label)}</text>`;
  }
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.yLog || y > 0));
    if (pts.length === 0) return;
    let d = `M${sx(pts[0]![0]).toFixed(1)},${sy(pts[0]![1]).toFixed(1)}`;
    for (let k = 1; k < pts.length; k++) {
      const [x, y] = pts[k]!;
      d += s.step ? `H${sx(x).toFixed(1)}V${sy(y).toFixed(1)}` : `L${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
    }
    out += `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}><title>${esc(s.name)}</title></path>`;
    if (s.dots) for (const [x, y] of pts) out += `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${color}"/>`;
  });
  // Legend in a row under the axis title, so it never hides a curve.
  let lx = m.l;
  series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length]!;
    const y = height - 8;
    out += `<line x1="${lx}" x2="${lx + 18}" y1="${y - 4}" y2="${y - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/><text x="${lx + 22}" y="${y}" class="legend">${esc(s.name)}</text>`;
    lx += 30 + s.name.length * 6.2;
  });
  return out + '</svg>';
}

/** Accuracy per confidence bin as bars against the diagonal, with the gap to the diagonal shaded. */
export function reliabilityChart(bins: readonly ReliabilityBin[], title: string, width = 360, height = 320): string {
  const m = { l: 50, r: 12, t: 30, b: 46 };
  const pw = width - m.l - m.r;
  const ph = height - m.t - m.b;
  const sx = (x: number): number => m.l + x * pw;
  const sy = (y: number): number => m.t + ph - y * ph;
  let out = `<svg class="chart reliability" role="img" aria-label="${esc(title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">`;
  out += `<text x="${m.l}" y="16" class="chart-title">${esc(title)}</text>`;
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    out += `<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(v)}" y2="${sy(v)}" class="grid"/><text x="${m.l - 6}" y="${sy(v) + 4}" text-anchor="end" class="tick">${v}</text>`;
    out += `<text x="${sx(v)}" y="${m.t + ph + 16}" text-anchor="middle" class="tick">${v}</text>`;
  }
  for (const b of bins) {
    if (b.count === 0) continue;
    const x = sx(b.lo) + 1;
    const w = sx(b.hi) - sx(b.lo) - 2;
    out += `<g class="bin"><title>confidence (${b.lo.toFixed(2)}, ${b.hi.toFixed(2)}]: ${b.count} images, mean confidence ${fmt(b.confidence)}, accuracy ${fmt(b.accuracy)}</title>`;
    out += `<rect x="${x.toFixed(1)}" y="${sy(b.accuracy).toFixed(1)}" width="${w.toFixed(1)}" height="${(sy(0) - sy(b.accuracy)).toFixed(1)}" fill="#0072B2" opacity="0.85"/>`;
    if (b.confidence > b.accuracy) {
      // Over-confident: shade the shortfall above the bar.
      out += `<rect x="${x.toFixed(1)}" y="${sy(b.confidence).toFixed(1)}" width="${w.toFixed(1)}" height="${(sy(b.accuracy) - sy(b.confidence)).toFixed(1)}" fill="#D55E00" opacity="0.35"/>`;
    }
    out += `<line x1="${x.toFixed(1)}" x2="${(x + w).toFixed(1)}" y1="${sy(b.confidence).toFixed(1)}" y2="${sy(b.confidence).toFixed(1)}" stroke="#D55E00" stroke-width="2"/>`;
    out += `<text x="${(x + w / 2).toFixed(1)}" y="${(sy(b.accuracy) - 3).toFixed(1)}" text-anchor="middle" class="tick small">${b.count}</text></g>`;
  }
  out += `<line x1="${sx(0)}" y1="${sy(0)}" x2="${sx(1)}" y2="${sy(1)}" class="diagonal"/>`;
  out += `<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" class="frame"/>`;
  out += `<text x="${m.l + pw / 2}" y="${height - 8}" text-anchor="middle" class="axis-title">confidence (top probability)</text>`;
  out += `<text x="12" y="${m.t + ph / 2}" text-anchor="middle" class="axis-title" transform="rotate(-90 12 ${m.t + ph / 2})">accuracy</text>`;
  return out + '</svg>';
}

/** Horizontal bars, one per item (compare pages). */
export function barChart(items: readonly { label: string; value: number; text?: string }[], title: string, domain: [number, number], width = 420): string {
  const rowH = 26;
  const m = { l: 150, r: 60, t: 28, b: 8 };
  const height = m.t + items.length * rowH + m.b;
  const pw = width - m.l - m.r;
  const sx = (v: number): number => m.l + (Math.max(domain[0], Math.min(domain[1], v)) - domain[0]) / (domain[1] - domain[0]) * pw;
  let out = `<svg class="chart bars" role="img" aria-label="${esc(title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">`;
  out += `<text x="4" y="16" class="chart-title">${esc(title)}</text>`;
  items.forEach((it, i) => {
    const y = m.t + i * rowH;
    out += `<text x="${m.l - 6}" y="${y + 17}" text-anchor="end">${esc(it.label)}</text>`;
    out += `<rect x="${m.l}" y="${y + 4}" width="${Math.max(0, sx(it.value) - m.l).toFixed(1)}" height="${rowH - 8}" fill="${PALETTE[i % PALETTE.length]}"/>`;
    out += `<text x="${(sx(it.value) + 4).toFixed(1)}" y="${y + 17}" class="tick">${esc(it.text ?? fmt(it.value))}</text>`;
  });
  return out + '</svg>';
}
