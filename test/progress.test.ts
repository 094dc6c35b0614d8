import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar, formatDuration, type ProgressStream } from '../src/util/progress.js';

/** Collects writes; `isTTY` as given. */
class FakeStream implements ProgressStream {
  chunks: string[] = [];
  constructor(
    readonly isTTY: boolean,
    readonly columns = 100,
  ) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk);
    return true;
  }
  get text(): string {
    return this.chunks.join('');
  }
}

/** A manual clock in milliseconds. */
function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('formatDuration', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(5), '5s');
  assert.equal(formatDuration(59.4), '59s');
  assert.equal(formatDuration(59.6), '1m00s');
  assert.equal(formatDuration(65), '1m05s');
  assert.equal(formatDuration(600), '10m00s');
  assert.equal(formatDuration(3723), '1h02m03s');
  assert.equal(formatDuration(Number.POSITIVE_INFINITY), '?');
  assert.equal(formatDuration(Number.NaN), '?');
  assert.equal(formatDuration(-1), '?');
});

test('non-TTY: one plain line per 10% and a final line with the elapsed time', () => {
  const s = new FakeStream(false);
  const clock = fakeClock();
  const bar = new ProgressBar({ total: 100, label: 'embed', stream: s, unit: 'img', now: clock.now });
  for (let i = 0; i < 100; i++) {
    clock.advance(100); // 10 img/s
    bar.tick();
  }
  assert.equal(s.chunks.length, 9, s.text); // 10%..90%; 100% is left to done()
  bar.done();
  bar.done(); // idempotent
  const lines = s.text.trimEnd().split('\n');
  assert.equal(lines.length, 10);
  assert.equal(lines[0], 'embed 10/100 (10%) 10.0 img/s ETA 9s');
  assert.equal(lines[4], 'embed 50/100 (50%) 10.0 img/s ETA 5s');
  assert.equal(lines[8], 'embed 90/100 (90%) 10.0 img/s ETA 1s');
  assert.equal(lines[9], 'embed 100/100 (100%) 10.0 img/s in 10s');
  assert.ok(!s.text.includes('\r'), 'no carriage returns in plain mode');
  // Updates after done() print nothing.
  bar.update(50);
  assert.equal(s.text.trimEnd().split('\n').length, 10);
});

test('non-TTY: slow progress still prints every ~5 s, with the ETA in minutes', () => {
  const s = new FakeStream(false);
  const clock = fakeClock();
  const bar = new ProgressBar({ total: 1000, label: 'train', stream: s, now: clock.now });
  clock.advance(2000);
  bar.update(1); // 0.5 it/s; < 10% and < 5 s since start: silent
  assert.equal(s.chunks.length, 0);
  clock.advance(3000);
  bar.update(2); // 5 s since start -> a line
  assert.deepEqual(s.chunks, ['train 2/1000 (0%) 2.5 s/it ETA 41m35s\n']);
  clock.advance(1000);
  bar.update(3); // only 1 s later: silent
  bar.update(2);
  assert.equal(s.chunks.length, 1);
  clock.advance(5000);
  bar.update(2); // 6 s later but no progress since the last line: silent
  assert.equal(s.chunks.length, 1);
  bar.update(4, 'loss 0.5'); // progress and >= 5 s: a line with the info text
  // 4 it in 11 s -> 2.75 s/it; ETA 996 * 2.75 = 2739 s.
  assert.equal(s.chunks[1], 'train 4/1000 (0%) 2.8 s/it ETA 45m39s loss 0.5\n');
});

test('non-TTY: big jumps print one line, not one per 10%', () => {
  const s = new FakeStream(false);
  const clock = fakeClock();
  const bar = new ProgressBar({ total: 10, label: 'x', stream: s, now: clock.now });
  clock.advance(1000);
  bar.update(7);
  assert.deepEqual(s.chunks, ['x 7/10 (70%) 7.0 it/s ETA 0s\n']);
  bar.update(20); // clamped to total, left to done()
  bar.done();
  assert.equal(s.chunks[1], 'x 10/10 (100%) 10.0 it/s in 1s\n');
});

test('TTY: redraws one line in place, throttled to ~10/s', () => {
  const s = new FakeStream(true, 100);
  const clock = fakeClock();
  const bar = new ProgressBar({ total: 50, label: 'epoch 1/3', stream: s, unit: 'batch', now: clock.now });
  for (let i = 0; i < 50; i++) {
    clock.advance(20); // 50 batch/s, so 5 ticks per 100 ms
    bar.tick();
  }
  // Draws at ticks 1, 6, 11, ..., 46 (every 100 ms) plus the forced draw at 50/50.
  assert.equal(s.chunks.length, 11);
  assert.ok(s.chunks.every((c) => c.startsWith('\r') && c.endsWith('\x1b[K')));
  assert.ok(!s.text.includes('\n'));
  assert.equal(s.chunks[0], '\repoch 1/3 [' + '.'.repeat(30) + '] 1/50 50.0 batch/s ETA 1s\x1b[K');
  assert.equal(s.chunks[10], '\repoch 1/3 [' + '#'.repeat(30) + '] 50/50 50.0 batch/s ETA 0s\x1b[K');
  bar.done();
  assert.equal(s.chunks.at(-2), '\repoch 1/3 [' + '#'.repeat(30) + '] 50/50 50.0 batch/s in 1s\x1b[K');
  assert.equal(s.chunks.at(-1), '\n');
});

test('TTY: the bar narrows to fit a small terminal', () => {
  const s = new FakeStream(true, 50);
  const clock = fakeClock();
  const bar = new ProgressBar({ total: 4, label: 'go', stream: s, now: clock.now });
  clock.advance(1000);
  bar.update(2);
  const line = s.chunks[0]!.slice(1, -3); // without \r and ESC[K
  assert.ok(line.length <= 50, `${line.length}: ${line}`);
  assert.match(line, /^go \[#+\.+\] 2\/4 2\.0 it\/s ETA 1s$/);
});

test('the tty option overrides the stream and total 0 is allowed', () => {
  const s = new FakeStream(true);
  const bar = new ProgressBar({ total: 0, label: 'empty', stream: s, tty: false, now: () => 0 });
  bar.done();
  assert.deepEqual(s.chunks, ['empty 0/0 (100%) - it/s in 0s\n']);
  assert.throws(() => new ProgressBar({ total: -1, label: 'bad', stream: s }), /total must be >= 0/);
});
