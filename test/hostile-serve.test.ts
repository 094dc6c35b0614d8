/**
 * `phoneside serve` against hostile clients, over real sockets (node:net) on 127.0.0.1: slow
 * uploads (slowloris, raw and multipart) that must not hold inference places and end with a JSON
 * 408; malformed requests and oversized headers answered by Node itself, in the service's error
 * shape; clients that go away after sending their body, whose work must be cancelled and their
 * places freed; a full queue's 503s logged as one line without a stack; and the server's memory
 * before and after all that. Time limits are small (through the options), so each case takes a
 * few seconds at most.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startServer, type RunningServer } from '../src/serve/server.js';
import { NO_DATA as skip } from './helpers/paths.js';
import { gate, metric, multipart, useServeFixture, until, type ClassifyJson, type ErrorJson } from './helpers/serve.js';

/** The server's time limits here: a body must arrive within TIMEOUT_MS, with no pause over IDLE_MS. */
const TIMEOUT_MS = 2000;
const IDLE_MS = 400;
/** Slow clients send one byte this often (never idle long enough, so only the whole-body limit cuts them). */
const TRICKLE_MS = 100;

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from the connection to the server closing it. */
  ms: number;
}

/** One client connection spoken to byte by byte; `closed` resolves with what the server answered once it closes. */
interface RawClient {
  socket: Socket;
  write(data: string | Uint8Array): void;
  /** Sends `data` one byte every TRICKLE_MS until it is all sent or the connection closes. */
  trickle(data: Uint8Array): void;
  closed: Promise<RawResponse>;
}

function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => undefined); // writes after the server has closed: expected here
    const closed = new Promise<RawResponse>((done) => {
      socket.once('close', () => {
        clearInterval(timer);
        const text = Buffer.concat(chunks).toString('latin1');
        const split = text.indexOf('\r\n\r\n');
        const [statusLine = '', ...lines] = (split >= 0 ? text.slice(0, split) : text).split('\r\n');
        const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        done({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body: split >= 0 ? text.slice(split + 4) : '', ms: performance.now() - t0 });
      });
    });
    socket.once('connect', () =>
      resolve({
        socket,
        write: (data) => {
          if (!socket.destroyed) socket.write(data);
        },
        trickle: (data) => {
          let i = 0;
          timer = setInterval(() => {
            if (socket.destroyed || i >= data.length) return clearInterval(timer);
            socket.write(data.subarray(i, ++i));
          }, TRICKLE_MS);
        },
        closed,
      }),
    );
    socket.once('error', reject);
  });
}

/** The head of a POST /v1/classify. */
const postHead = (headers: Record<string, string | number>): string =>
  `POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;

/** Asserts a raw answer in the service's error shape with this status and code. */
function assertRawError(res: RawResponse, status: number, code: string): ErrorJson['error'] {
  assert.equal(res.status, status, `${res.status} ${res.body}`);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/);
  const e = (JSON.parse(res.body) as ErrorJson).error;
  assert.equal(e.status, status);
  assert.equal(e.code, code);
  assert.ok(e.message.length > 0);
  return e;
}

const MB = 1024 * 1024;

describe('serve: hostile clients over real sockets', { skip }, () => {
  const s = useServeFixture({ app: false });
  let srv: RunningServer;
  let port: number;
  /** Awaited inside the inference slot (a test's gate), when set. */
  let inferenceHook: (() => Promise<void>) | undefined;
  /** The server's log (pino JSON lines). */
  const log: string[] = [];
  let rssBefore = 0;

  const metrics = async (): Promise<string> => (await fetch(`${srv.url}/metrics`)).text();
  const classify = async (body: Uint8Array): Promise<{ status: number; ms: number; json: unknown }> => {
    const t0 = performance.now();
    const res = await fetch(`${srv.url}/v1/classify`, { method: 'POST', body: new Uint8Array(body) });
    return { status: res.status, json: await res.json(), ms: performance.now() - t0 };
  };

  before(async () => {
    srv = await startServer({
      ...s.base(),
      deviceModel: false,
      port: 0,
      queueSize: 2, // 1 running + 2 waiting: three requests fill it
      timeoutMs: TIMEOUT_MS,
      uploadIdleMs: IDLE_MS,
      testHooks: { beforeInference: () => inferenceHook?.() ?? Promise.resolve() },
      logger: { stream: { write: (line: string) => void log.push(line) }, level: 'info' },
    });
    port = Number(new URL(srv.url).port);
    // Warm up (the first inference is slower), then take the baseline.
    assert.equal((await classify(s.jpegs[0]!)).status, 200);
    rssBefore = process.memoryUsage().rss;
  });

  after(async () => {
    if (srv === undefined) return;
    const rssAfter = process.memoryUsage().rss;
    console.log(`hostile-serve: rss before ${(rssBefore / MB).toFixed(1)} MB after ${(rssAfter / MB).toFixed(1)} MB (growth ${((rssAfter - rssBefore) / MB).toFixed(1)} MB)`);
    await srv.close();
    assert.ok(rssAfter - rssBefore < 200 * MB, `RSS grew by ${((rssAfter - rssBefore) / MB).toFixed(0)} MB`);
  });

  test('slow uploads (raw and multipart) hold no inference place: a real client is answered at once; the slow ones get 408 after the idle or body limit', async () => {
    const jpeg = s.jpegs[0]!;
    const mp = multipart([{ filename: 'slow.jpg', type: 'image/jpeg', data: jpeg }]);
    const rawHead = postHead({ 'content-type': 'image/jpeg', 'content-length': jpeg.length });
    const mpHead = postHead({ ...mp.headers, 'content-length': mp.payload.length });
    // Six slow clients, twice the queue's three places: four trickle one byte every 100 ms (never
    // idle long enough: the whole-body limit ends them), two send part of the body and stall.
    const tricklers = await Promise.all([0, 1, 2, 3].map(() => rawClient(port)));
    const stallers = await Promise.all([0, 1].map(() => rawClient(port)));
    tricklers.forEach((c, i) => {
      c.write(i % 2 === 0 ? rawHead : mpHead);
      c.trickle(i % 2 === 0 ? jpeg : mp.payload);
    });
    stallers[0]!.write(rawHead + jpeg.subarray(0, 100).toString('latin1'));
    stallers[1]!.write(Buffer.concat([Buffer.from(mpHead), mp.payload.subarray(0, 300)]));
    await new Promise((r) => setTimeout(r, 150)); // their headers are in: fastify has their requests

    // Real clients, raw and multipart, while the slow ones upload: answered promptly.
    for (let i = 0; i < 3; i++) {
      const res = await classify(s.jpegs[i % 2]!);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.ok(res.ms < 1000, `a real request took ${res.ms.toFixed(0)} ms next to the slow uploads`);
    }
    const form = await fetch(`${srv.url}/v1/classify`, { method: 'POST', body: new Uint8Array(mp.payload), headers: mp.headers });
    assert.equal(form.status, 200);
    assert.equal(((await form.json()) as ClassifyJson).results[0]!.filename, 'slow.jpg');
    const m = await metrics();
    assert.equal(metric(m, 'phoneside_queue_depth'), 0, 'the slow uploads are not in the queue');
    assert.equal(metric(m, 'phoneside_inference_running'), 0);

    // The stalled ones end after the idle limit, the tricklers after the body limit: JSON 408, connection closed.
    for (const c of stallers) {
      const res = await c.closed;
      const e = assertRawError(res, 408, 'request_timeout');
      assert.match(e.message, /stalled: no data for 400 ms/);
      assert.equal(res.headers['connection'], 'close');
      assert.ok(res.ms >= IDLE_MS && res.ms < IDLE_MS + 1500, `stalled upload ended after ${res.ms.toFixed(0)} ms`);
    }
    for (const c of tricklers) {
      const res = await c.closed;
      const e = assertRawError(res, 408, 'request_timeout');
      assert.match(e.message, /did not arrive within 2000 ms/);
      assert.ok(res.ms >= TIMEOUT_MS - 100 && res.ms < TIMEOUT_MS + 1500, `trickled upload ended after ${res.ms.toFixed(0)} ms`);
    }
    const after = await metrics();
    assert.equal(metric(after, 'phoneside_http_errors_total', '{route="/v1/classify",code="request_timeout"}'), 6);
    assert.equal(metric(after, 'phoneside_queue_rejected_total'), 0);
    assert.equal(metric(after, 'phoneside_upload_bytes_receiving'), 0, 'their bytes no longer count');
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  });

  test('many uploads at once are bounded in bytes: past (slots + queue) x the body limit a new upload gets 503 busy, and the count drains', async () => {
    // Three bodies of ~0.94 MiB (two 480 kB parts each, the last 100 bytes held back) fit in the
    // fixture's 3 x 1 MiB; the fourth crosses it.
    const junk = Buffer.alloc(480_000, 7);
    const mp = multipart([{ filename: 'a.jpg', data: junk }, { filename: 'b.jpg', data: junk }]);
    const head = postHead({ ...mp.headers, 'content-length': mp.payload.length });
    const partial = Buffer.concat([Buffer.from(head), mp.payload.subarray(0, mp.payload.length - 100)]);
    const holders = await Promise.all([0, 1, 2].map(() => rawClient(port)));
    holders.forEach((c) => c.write(partial));
    const receiving = async (): Promise<number> => metric(await metrics(), 'phoneside_upload_bytes_receiving');
    await until(async () => (await receiving()) >= 3 * (mp.payload.length - 100), 'three bodies arriving');
    const rejected = metric(await metrics(), 'phoneside_queue_rejected_total');
    const fourth = await rawClient(port);
    fourth.write(partial);
    const busy = await fourth.closed;
    const e = assertRawError(busy, 503, 'busy');
    assert.match(e.message, /too many uploads/);
    assert.ok(Number(busy.headers['retry-after']) >= 1);
    assert.equal(metric(await metrics(), 'phoneside_queue_rejected_total'), rejected + 1);
    // The three stall and are cut after the idle limit; their bytes no longer count.
    for (const c of holders) assertRawError(await c.closed, 408, 'request_timeout');
    await until(async () => (await receiving()) === 0, 'the count to drain');
    assert.equal((await classify(s.jpegs[0]!)).status, 200);
  });

  test("Node-level bad requests (malformed request line, oversized headers, headers too slow) get the service's JSON error", async () => {
    const bad = await rawClient(port);
    bad.write('HELLO WORLD\r\n\r\n');
    const e400 = assertRawError(await bad.closed, 400, 'bad_request');
    assert.match(e400.message, /malformed/);

    const big = await rawClient(port);
    big.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`);
    const r431 = await big.closed;
    assertRawError(r431, 431, 'headers_too_large');
    assert.equal(r431.headers['x-content-type-options'], 'nosniff');

    // Headers that never end: Node's header timeout (the per-request timeout here), answered 408.
    const slow = await rawClient(port);
    slow.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const r408 = await slow.closed;
    assertRawError(r408, 408, 'request_timeout');
    assert.ok(r408.ms < TIMEOUT_MS + 2000, `header timeout after ${r408.ms.toFixed(0)} ms`);

    const m = await metrics();
    assert.equal(metric(m, 'phoneside_http_client_errors_total', '{code="bad_request"}'), 1);
    assert.equal(metric(m, 'phoneside_http_client_errors_total', '{code="headers_too_large"}'), 1);
    assert.equal(metric(m, 'phoneside_http_client_errors_total', '{code="request_timeout"}'), 1);
    assert.equal((await fetch(`${srv.url}/healthz`)).status, 200);
  });

  test('abandoned requests are cancelled: their places are freed, their inference skipped, and they are counted but not as errors', async () => {
    const g = gate();
    inferenceHook = g.wait;
    try {
      const before = await metrics();
      const inferences = metric(before, 'phoneside_inference_duration_seconds_count');
      const jpeg = s.jpegs[1]!;
      const whole = Buffer.concat([Buffer.from(postHead({ 'content-type': 'image/jpeg', 'content-length': jpeg.length })), jpeg]);
      // One in the inference slot (held at the gate), one halfway through its upload, two
      // waiting: the queue is full.
      const running = await rawClient(port);
      running.write(whole);
      await g.entered;
      const halfway = await rawClient(port);
      halfway.write(whole.subarray(0, whole.length - 1000));
      const waiting = await Promise.all([0, 1].map(() => rawClient(port)));
      waiting.forEach((c) => c.write(whole));
      await until(async () => metric(await metrics(), 'phoneside_queue_depth') === 2, 'two requests waiting');
      assert.equal((await classify(jpeg)).status, 503, 'the queue is full');

      // All four clients go away.
      for (const c of [running, ...waiting, halfway]) c.socket.destroy();
      await until(async () => metric(await metrics(), 'phoneside_queue_depth') === 0, 'the waiting places to be freed');
      const m = await metrics();
      assert.equal(metric(m, 'phoneside_requests_abandoned_total', '{stage="inference"}'), 1);
      assert.equal(metric(m, 'phoneside_requests_abandoned_total', '{stage="queued"}'), 2);
      assert.equal(metric(m, 'phoneside_requests_abandoned_total', '{stage="upload"}'), 1);
      assert.equal(metric(m, 'phoneside_http_errors_total', '{route="/v1/classify",code="client_closed"}'), 0, 'not errors of the service');
      assert.equal(metric(m, 'phoneside_upload_bytes_receiving'), 0);
      // The one in the slot keeps it until its (gated) work ends, then skips the inference.
      assert.equal(metric(m, 'phoneside_inference_running'), 1);
      g.open();
      await until(async () => metric(await metrics(), 'phoneside_inference_running') === 0, 'the slot to be freed');

      const res = await classify(jpeg);
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.ok(res.ms < 1000, `the next real request took ${res.ms.toFixed(0)} ms`);
      const afterText = await metrics();
      assert.equal(metric(afterText, 'phoneside_inference_duration_seconds_count'), inferences + 1, 'only the real request ran an inference');
      // Logged as one info line each, not as errors.
      const cancelled = log.filter((l) => /request cancelled/.test(l));
      assert.equal(cancelled.length, 4, cancelled.join(''));
      assert.ok(cancelled.every((l) => /"level":30/.test(l)));
      assert.ok(!log.some((l) => /"level":(50|60)/.test(l)), 'no error logged');
    } finally {
      g.open();
      inferenceHook = undefined;
    }
  });

  test("a full queue's 503s are logged as one warning line each, without a stack", async () => {
    const g = gate();
    inferenceHook = g.wait;
    const from = log.length;
    try {
      const jpeg = s.jpegs[0]!;
      const held = [classify(jpeg)];
      await g.entered;
      held.push(classify(jpeg), classify(jpeg));
      await until(async () => metric(await metrics(), 'phoneside_queue_depth') === 2, 'two requests waiting');
      const refused = await Promise.all([0, 1, 2].map(() => classify(jpeg)));
      for (const r of refused) assert.equal((r.json as ErrorJson).error.code, 'busy');
      g.open();
      for (const r of await Promise.all(held)) assert.equal(r.status, 200);
      await until(async () => log.slice(from).filter((l) => /"statusCode":503/.test(l)).length === 3, 'the 503s to be logged');
      const lines = log.slice(from).flatMap((chunk) => chunk.split('\n').filter((l) => l !== ''));
      const busy = lines.filter((l) => /server busy/.test(l));
      assert.equal(busy.length, 3, lines.join('\n'));
      for (const l of busy) {
        const entry = JSON.parse(l) as Record<string, unknown>;
        assert.equal(entry['level'], 40, l); // warn
        assert.equal(entry['code'], 'busy');
        assert.equal(entry['err'], undefined, l);
        assert.doesNotMatch(l, /stack|    at /, l);
      }
      assert.ok(!lines.some((l) => /"level":(50|60)/.test(l)), `no error lines:\n${lines.join('\n')}`);
    } finally {
      g.open();
      inferenceHook = undefined;
    }
  });
});
