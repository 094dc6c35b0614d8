/**
 * A dependency-free progress bar. On a terminal it redraws one line in place; when output goes
 * to a file or CI log it prints a plain line every ~10% (or every ~5 s when progress is slow),
 * so logs stay short and readable.
 */

/** The part of a writable stream the bar uses (process.stderr fits; tests pass a fake). */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressBarOptions {
  total: number;
  label: string;
  stream?: ProgressStream;
  /** What is counted, e.g. 'img' or 'batch'; used in the rate. Default 'it'. */
  unit?: string;
  /** Clock in milliseconds; injectable for tests. Default Date.now. */
  now?: () => number;
  /** Force TTY or plain mode instead of asking the stream. */
  tty?: boolean;
  /** When the work began, on the `now` clock (default: construction), for bars made late. */
  startedAt?: number;
}

const TTY_INTERVAL_MS = 100; // ~10 redraws per second
const PLAIN_INTERVAL_MS = 5000;
const PLAIN_STEPS = 10; // a plain line per 10% of progress

/** 5 -> "5s", 65 -> "1m05s", 3723 -> "1h02m03s"; unknown (NaN, Infinity, negative) -> "?". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const two = (n: number): string => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${two(Math.floor((s % 3600) / 60))}m${two(s % 60)}s`;
}

export class ProgressBar {
  readonly total: number;
  readonly label: string;
  private readonly stream: ProgressStream;
  private readonly unit: string;
  private readonly now: () => number;
  private readonly tty: boolean;
  private readonly start: number;
  private current = 0;
  private info = '';
  private finished = false;
  private lastDrawAt = Number.NEGATIVE_INFINITY;
  private lastPrintAt: number;
  private lastPrintedStep = 0;
  private lastPrintedCount = 0;

  constructor(opts: ProgressBarOptions) {
    if (!(opts.total >= 0) || !Number.isFinite(opts.total)) throw new Error(`total must be >= 0, got ${opts.total}`);
    this.total = opts.total;
    this.label = opts.label;
    this.stream = opts.stream ?? process.stderr;
    this.unit = opts.unit ?? 'it';
    this.now = opts.now ?? Date.now;
    this.tty = opts.tty ?? this.stream.isTTY === true;
    this.start = opts.startedAt ?? this.now();
    this.lastPrintAt = this.start;
  }

  get count(): number {
    return this.current;
  }

  tick(n = 1, info?: string): void {
    this.update(this.current + n, info);
  }

  /** Sets the absolute count; `info` (e.g. "loss 0.41") is shown after the numbers. */
  update(done: number, info?: string): void {
    if (this.finished) return;
    this.current = Math.min(Math.max(done, 0), this.total);
    if (info !== undefined) this.info = info;
    const t = this.now();
    if (this.tty) {
      if (t - this.lastDrawAt >= TTY_INTERVAL_MS || this.current === this.total) this.draw(t);
      return;
    }
    // The final plain line comes from done(), which adds the elapsed time.
    if (this.current >= this.total) return;
    const step = this.total > 0 ? Math.floor((this.current * PLAIN_STEPS) / this.total) : 0;
    const slowTick = t - this.lastPrintAt >= PLAIN_INTERVAL_MS && this.current > this.lastPrintedCount;
    if (step > this.lastPrintedStep || slowTick) {
      this.stream.write(this.plainLine(t, false) + '\n');
      this.lastPrintAt = t;
      this.lastPrintedStep = step;
      this.lastPrintedCount = this.current;
    }
  }

  /** Final line with the elapsed time; later calls (and updates) do nothing. */
  done(info?: string): void {
    if (this.finished) return;
    if (info !== undefined) this.info = info;
    const t = this.now();
    if (this.tty) this.draw(t, true);
    else this.stream.write(this.plainLine(t, true) + '\n');
    if (this.tty) this.stream.write('\n');
    this.finished = true;
  }

  private rate(t: number): number {
    const secs = (t - this.start) / 1000;
    return secs > 0 ? this.current / secs : Number.NaN;
  }

  private rateText(t: number): string {
    const r = this.rate(t);
    if (!(r > 0)) return `- ${this.unit}/s`;
    return r >= 1 ? `${r.toFixed(1)} ${this.unit}/s` : `${(1 / r).toFixed(1)} s/${this.unit}`;
  }

  private timeText(t: number, final: boolean): string {
    if (final) return `in ${formatDuration((t - this.start) / 1000)}`;
    return `ETA ${formatDuration((this.total - this.current) / this.rate(t))}`;
  }

  private percent(): number {
    return this.total > 0 ? Math.floor((this.current / this.total) * 100) : 100;
  }

  private plainLine(t: number, final: boolean): string {
    const parts = [
      this.label,
      `${this.current}/${this.total}`,
      `(${this.percent()}%)`,
      this.rateText(t),
      this.timeText(t, final),
    ];
    if (this.info) parts.push(this.info);
    return parts.join(' ');
  }

  private draw(t: number, final = false): void {
    this.lastDrawAt = t;
    const columns = this.stream.columns ?? 80;
    const tail = ` ${this.current}/${this.total} ${this.rateText(t)} ${this.timeText(t, final)}${this.info ? ' ' + this.info : ''}`;
    const width = Math.max(5, Math.min(30, columns - this.label.length - tail.length - 4));
    const filled = this.total > 0 ? Math.floor((this.current / this.total) * width) : width;
    const bar = '#'.repeat(filled) + '.'.repeat(width - filled);
    // \r returns to column 0; ESC[K clears what a longer previous line left behind.
    this.stream.write(`\r${this.label} [${bar}]${tail}\x1b[K`);
  }
}
