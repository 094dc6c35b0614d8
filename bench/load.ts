/**
 * Load test of `phoneside serve` on loopback with autocannon: starts the server as a child
 * process (so the load generator does not share its event loop), posts real phone JPEGs from
 * ../shared/datasets/phones as raw bodies, and prints throughput and latency for:
 *   - 1 connection (the latency of one request on an idle server);
 *   - 1x saturation: connections = inference slots + queue capacity, so every request is admitted;
 *   - 2x saturation: twice those connections, each re-sending at once (closed loop): the excess is
 *     answered 503 + Retry-After at once, admitted requests keep a bounded latency;
 *   - 2x rate: requests arrive at random (Poisson) at twice the rate sustained at 1x, whatever
 *     the answers (open loop), the usual meaning of "twice the capacity": about half must be 503s.
 *     This phase uses fetch, not autocannon, whose rate limit sends each second's requests in one
 *     burst at the start of the second.
 * The load generator runs in this process and competes with the server for the same cores.
 *
 *   node --import tsx bench/load.ts [--model resnet50] [--duration 10] [--workers N] [--threads N]
 *                                    [--queue N] [--images 24] [--json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// autocannon ships no types; the part used here.
interface AutocannonRequest {
  method: string;
  path: string;
  body: Buffer;
  headers: Record<string, string>;
}
interface AutocannonResult {
  requests: { total: number; average: number };
  errors: number;
  timeouts: number;
  duration: number;
  non2xx: number;
}
interface AutocannonInstance extends PromiseLike<AutocannonResult> {
  on(event: 'response', fn: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}
type Autocannon = (opts: { url: string; connections: number; duration: number; timeout: number; requests: AutocannonRequest[] }) => AutocannonInstance;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DATA = resolve(ROOT, '../shared/datasets/phones');
const MOBILENET = resolve(ROOT, '../shared/weights/mobilenet_v2_0.35_224');

const { values: v } = parseArgs({
  options: {
    model: { type: 'string', default: 'resnet50' },
    duration: { type: 'string', default: '10' },
    workers: { type: 'string' },
    threads: { type: 'string' },
    queue: { type: 'string' },
    images: { type: 'string', default: '24' },
    json: { type: 'boolean' },
  },
});

/** Starts `phoneside serve` in a child process on a free port; resolves with its URL. */
async function startChild(): Promise<{ child: ChildProcess; url: string; banner: string }> {
  const cli = join(ROOT, 'src/cli/main.ts');
  const args = ['serve', '--port', '0', '--quiet', '--model', v.model!, '--no-device-model'];
  for (const k of ['workers', 'threads', 'queue'] as const) if (v[k] !== undefined) args.push(`--${k}`, v[k]!);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', `import(${JSON.stringify(cli)}).then((m) => m.main(process.argv.slice(1))).then((c) => { process.exitCode = c; })`, ...args],
    // MobileNetV2's weights from ../shared (for a MobileNetV2 model or ensemble), without a download.
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...(existsSync(MOBILENET) ? { PHONESIDE_WEIGHTS_MOBILENET_V2_035: MOBILENET } : {}) } },
  );
  let err = '';
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server did not start in 120 s:\n${err}`)), 120_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /phoneside serve: (http:\/\/[^\s]+)/.exec(err);
      if (m && /api key/.test(err)) {
        clearTimeout(timer);
        res({ child, url: m[1]!, banner: err.trim() });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`server exited with ${code}:\n${err}`));
    });
  });
}

async function phoneJpegs(n: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const classes = ['front', 'back', 'none'];
  const lists = await Promise.all(classes.map(async (c) => (await readdir(join(DATA, c))).filter((f) => /\.jpe?g$/i.test(f)).sort()));
  // Spread over the folder, classes interleaved.
  for (let i = 0; out.length < n; i++) {
    const list = lists[i % 3]!;
    const k = Math.floor(i / 3);
    const step = Math.max(1, Math.floor(list.length / Math.ceil(n / 3)));
    if (k * step >= list.length) break;
    out.push(await readFile(join(DATA, classes[i % 3]!, list[k * step]!)));
  }
  return out;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function scrape(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(phoneside_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

interface PhaseResult {
  phase: string;
  connections: number;
  seconds: number;
  ok: number;
  busy: number;
  other: number;
  errors: number;
  reqPerS: number;
  okPerS: number;
  imagesPerS: number;
  okP50: number;
  okP99: number;
  busyP50: number;
  busyP99: number;
  maxQueueDepth: number;
  /** 503s counted by the server itself (should equal `busy`). */
  rejectedByServer: number;
}

/** Samples the server's queue depth every 250 ms until stopped; resolves with the maximum. */
function sampleDepth(url: string): { stop: () => Promise<number> } {
  let max = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      const m = await scrape(url).catch(() => ({}) as Record<string, number>);
      max = Math.max(max, m['phoneside_queue_depth'] ?? 0);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    stop: async () => {
      on = false;
      await loop;
      return max;
    },
  };
}

function summarise(name: string, connections: number, seconds: number, okMs: number[], busyMs: number[], other: number, errors: number, maxQueueDepth: number, rejectedByServer: number): PhaseResult {
  okMs.sort((a, b) => a - b);
  busyMs.sort((a, b) => a - b);
  return {
    phase: name,
    connections,
    seconds,
    ok: okMs.length,
    busy: busyMs.length,
    other,
    errors,
    reqPerS: (okMs.length + busyMs.length + other) / seconds,
    okPerS: okMs.length / seconds,
    imagesPerS: okMs.length / seconds, // one image per request
    okP50: percentile(okMs, 50),
    okP99: percentile(okMs, 99),
    busyP50: percentile(busyMs, 50),
    busyP99: percentile(busyMs, 99),
    maxQueueDepth,
    rejectedByServer,
  };
}

/** Open loop: Poisson arrivals at `rate` per second for `duration` s, each request on its own. */
async function openLoopPhase(name: string, url: string, rate: number, duration: number, bodies: Buffer[]): Promise<PhaseResult> {
  const okMs: number[] = [];
  const busyMs: number[] = [];
  let other = 0;
  let errors = 0;
  let peak = 0;
  let open = 0;
  const depth = sampleDepth(url);
  const before = await scrape(url);
  const inflight: Promise<void>[] = [];
  const t0 = performance.now();
  let next = t0;
  for (let i = 0; ; i++) {
    next += (-Math.log(1 - Math.random()) / rate) * 1000;
    if (next - t0 > duration * 1000) break;
    const wait = next - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = bodies[i % bodies.length]!;
    const sent = performance.now();
    open++;
    peak = Math.max(peak, open);
    inflight.push(
      fetch(`${url}/v1/classify`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': 'image/jpeg' } })
        .then(async (res) => {
          await res.arrayBuffer();
          const ms = performance.now() - sent;
          if (res.status === 200) okMs.push(ms);
          else if (res.status === 503) busyMs.push(ms);
          else other++;
        })
        .catch(() => void errors++)
        .finally(() => void open--),
    );
  }
  await Promise.all(inflight);
  const seconds = (performance.now() - t0) / 1000;
  const maxDepth = await depth.stop();
  const after = await scrape(url);
  const rejected = (after['phoneside_queue_rejected_total'] ?? 0) - (before['phoneside_queue_rejected_total'] ?? 0);
  return summarise(name, peak, seconds, okMs, busyMs, other, errors, maxDepth, rejected);
}

async function phase(name: string, url: string, connections: number, duration: number, bodies: Buffer[]): Promise<PhaseResult> {
  const okMs: number[] = [];
  const busyMs: number[] = [];
  let other = 0;
  const requests: AutocannonRequest[] = bodies.map((body) => ({ method: 'POST', path: '/v1/classify', body, headers: { 'content-type': 'image/jpeg' } }));
  const depth = sampleDepth(url);
  const before = await scrape(url);
  const inst = autocannon({ url, connections, duration, timeout: 60, requests });
  inst.on('response', (_c, status, _b, ms) => {
    if (status === 200) okMs.push(ms);
    else if (status === 503) busyMs.push(ms);
    else other++;
  });
  const r = await inst;
  const maxDepth = await depth.stop();
  const after = await scrape(url);
  const rejected = (after['phoneside_queue_rejected_total'] ?? 0) - (before['phoneside_queue_rejected_total'] ?? 0);
  return summarise(name, connections, r.duration, okMs, busyMs, other, r.errors + r.timeouts, maxDepth, rejected);
}

/** Checks one 503 by hand: status, Retry-After and body, while the server is saturated. */
async function probe503(url: string, connections: number, body: Buffer): Promise<string> {
  const flood = Array.from({ length: connections }, () =>
    fetch(`${url}/v1/classify`, { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': 'image/jpeg' } }).then(async (r) => ({
      status: r.status,
      retry: r.headers.get('retry-after'),
      body: await r.text(),
    })),
  );
  const res = await Promise.all(flood);
  const busy = res.find((r) => r.status === 503);
  return busy ? `503 Retry-After: ${busy.retry} ${busy.body}` : `no 503 among ${connections} simultaneous requests`;
}

const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : '-');

async function main(): Promise<void> {
  if (!existsSync(DATA)) {
    process.stderr.write(`bench/load: ${DATA} is missing (the phones data set); nothing to send\n`);
    process.exitCode = 2;
    return;
  }
  const duration = Number(v.duration);
  const bodies = await phoneJpegs(Number(v.images));
  process.stderr.write(`bench/load: ${bodies.length} phone JPEGs (${f0(bodies.reduce((a, b) => a + b.length, 0) / bodies.length / 1024)} KB on average); starting the server...\n`);
  const { child, url, banner } = await startChild();
  try {
    process.stderr.write(banner.split('\n').map((l) => `  | ${l}`).join('\n') + '\n');
    const m = await scrape(url);
    const slots = m['phoneside_inference_slots'] ?? 1;
    const capacity = m['phoneside_queue_capacity'] ?? 0;
    const saturation = slots + capacity;
    process.stderr.write(`bench/load: warm-up 3 s; saturation = ${slots} slot(s) + ${capacity} queued = ${saturation} connections\n`);
    await phase('warm-up', url, saturation, 3, bodies);
    const results: PhaseResult[] = [];
    results.push(await phase('1 connection', url, 1, Math.max(4, Math.round(duration / 2)), bodies));
    results.push(await phase('1x saturation', url, saturation, duration, bodies));
    results.push(await phase('2x saturation', url, 2 * saturation, duration, bodies));
    // Open loop: requests arrive at twice the rate the server sustained at 1x, whatever the answers.
    const rate = Math.max(2, Math.round(2 * results[1]!.okPerS));
    results.push(await openLoopPhase(`2x rate (${rate}/s)`, url, rate, duration, bodies));
    const probe = await probe503(url, 3 * saturation, bodies[0]!);

    if (v.json) {
      process.stdout.write(JSON.stringify({ url, slots, capacity, cpus: availableParallelism(), results, probe }, null, 2) + '\n');
      return;
    }
    const head = ['phase', 'conns*', 'req/s', '200/s = img/s', '200', '503', 'other', 'p50 200 ms', 'p99 200 ms', 'p50 503 ms', 'p99 503 ms', 'max queue', 'server 503s'];
    const rows = results.map((r) => [
      r.phase, String(r.connections), f1(r.reqPerS), f1(r.imagesPerS), String(r.ok), String(r.busy), String(r.other + r.errors),
      f0(r.okP50), f0(r.okP99), f1(r.busyP50), f1(r.busyP99), String(r.maxQueueDepth), String(r.rejectedByServer),
    ]);
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
    const line = (cells: string[]): string => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
    const cpu = cpus()[0]?.model ?? 'cpu';
    process.stdout.write(
      `\nphoneside serve load test: model ${v.model}, ${availableParallelism()} cores (${cpu}), one phone JPEG per request, ${duration} s per phase\n` +
        `${banner.split('\n').find((l) => l.includes('inference'))?.trim() ?? ''}\n\n` +
        line(head) + '\n' + '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|\n' +
        rows.map(line).join('\n') + '\n\n' +
        `* connections; for the open-loop phase, the most requests open at once.\n` +
        `A 503 at 3x saturation: ${probe}\n`,
    );
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/load: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
