/**
 * API tests of `phoneside serve` (src/serve): every route, every error status, the bounded queue
 * (503 + Retry-After), the per-request timeout, the API key, graceful shutdown, and the device
 * model the web page runs. Most tests use the small fixture bundle (test/infer-fixture.ts) through
 * fastify's inject(); one block loads the real shipped models.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadForModel } from '../src/data/image.js';
import { Classifier } from '../src/infer/classifier.js';
import { shippedModelPath } from '../src/infer/load.js';
import { env } from '../src/env.js';
import { cmdServe, parseServeArgs } from '../src/cli/serve.js';
import { createServer, startServer, type ServeOptions } from '../src/serve/server.js';
import { sniffImage } from '../src/serve/sniff.js';
import { webDir } from '../src/web/assets.js';
import { InferenceQueue, QueueFullError } from '../src/serve/queue.js';
import { CLASSES, DATA, haveData, IMAGES, makeBundle, MOBILENET } from './infer-fixture.js';
import { fakeIO } from './helpers/cli.js';

const skip = haveData ? false : 'needs ../shared (phones data set and MobileNetV2 weights)';

interface FilePart {
  field?: string;
  filename?: string;
  type?: string;
  data: Uint8Array | string;
}

/** A multipart/form-data body built by hand (so tests control every byte). */
function multipart(parts: FilePart[], extra: { name: string; value: string }[] = []): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----phoneside-test-boundary-7d1f';
  const chunks: Buffer[] = [];
  for (const f of extra) chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"\r\n\r\n${f.value}\r\n`));
  for (const p of parts) {
    const fn = p.filename !== undefined ? `; filename="${p.filename}"` : '';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.field ?? 'file'}"${fn}\r\nContent-Type: ${p.type ?? 'application/octet-stream'}\r\n\r\n`));
    chunks.push(Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

interface ErrorJson {
  error: { status: number; code: string; message: string; file?: string; details?: { file: string; status: number; code: string }[] };
}

interface ClassifyJson {
  model: { id: string; version: string };
  results: { filename: string | null; label: string; predicted: string; confidence: number; probabilities: Record<string, number>; ms: number }[];
  ms: number;
}

function assertError(res: { statusCode: number; json(): unknown; headers: Record<string, unknown> }, status: number, code: string): ErrorJson['error'] {
  const body = res.json() as ErrorJson;
  assert.equal(res.statusCode, status, JSON.stringify(body));
  assert.match(String(res.headers['content-type']), /application\/json/);
  assert.equal(body.error.status, status);
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 0);
  return body.error;
}

/** A counter's value from Prometheus text (0 when absent). */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** Polls until `cond` holds (rather than sleeping a guessed time, which a slow CI box outlasts). */
async function until(cond: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A gate the test opens: inference waits on it. */
function gate(): { wait: () => Promise<void>; open: () => void; entered: Promise<void> } {
  let open!: () => void;
  let entered!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const enteredP = new Promise<void>((r) => (entered = r));
  return {
    wait: async () => {
      entered();
      await opened;
    },
    open,
    entered: enteredP,
  };
}

const argmax = (p: Record<string, number>): string => Object.entries(p).reduce((a, b) => (b[1] > a[1] ? b : a))[0];

describe('serve: unit pieces', () => {
  test('sniffImage reads types from magic bytes, not names', () => {
    assert.deepEqual(sniffImage(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0])), { ok: true, type: 'jpeg' });
    assert.deepEqual(sniffImage(Buffer.from('\x89PNG\r\n\x1a\n....', 'latin1')), { ok: true, type: 'png' });
    assert.deepEqual(sniffImage(Buffer.from('RIFF\0\0\0\0WEBPVP8 ', 'latin1')), { ok: true, type: 'webp' });
    assert.deepEqual(sniffImage(Buffer.from('GIF89a..', 'latin1')), { ok: true, type: 'gif' });
    assert.deepEqual(sniffImage(Buffer.from('\0\0\0\x18ftypavif\0\0\0\0mif1avif', 'latin1')), { ok: true, type: 'avif' });
    const heic = sniffImage(Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1'));
    assert.equal(heic.ok, false);
    assert.match(heic.ok ? '' : heic.why, /HEIC/);
    assert.equal(sniffImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')).ok, false);
    assert.equal(sniffImage(Buffer.from('hello')).ok, false);
    assert.deepEqual(sniffImage(new Uint8Array(0)), { ok: false, why: 'empty' });
  });

  test('InferenceQueue admits concurrency + capacity, refuses the rest at once, runs FIFO', async () => {
    const q = new InferenceQueue({ concurrency: 1, capacity: 2 });
    const order: number[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const tickets = [q.admit(), q.admit(), q.admit()];
    assert.throws(() => q.admit(), (e: unknown) => e instanceof QueueFullError && e.retryAfterSeconds >= 1);
    assert.equal(q.rejected, 1);
    const runs = tickets.map((t, i) =>
      t.run(async () => {
        order.push(i);
        if (i === 0) await held;
      }),
    );
    await new Promise((r) => setImmediate(r));
    assert.equal(q.running, 1);
    assert.equal(q.depth, 2);
    release();
    await Promise.all(runs);
    tickets.forEach((t) => t.release());
    assert.deepEqual(order, [0, 1, 2]);
    assert.equal(q.admitted, 0);
    assert.doesNotThrow(() => q.admit().release());
  });

  test('InferenceQueue: an aborted waiter leaves the line; a running one keeps its place until it ends', async () => {
    const q = new InferenceQueue({ concurrency: 1, capacity: 1 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const a = q.admit();
    const b = q.admit();
    const ra = a.run(() => held);
    const ac = new AbortController();
    const rb = b.run(async () => 'never', ac.signal);
    ac.abort(new Error('gone'));
    await assert.rejects(rb, /gone/);
    b.release();
    a.release(); // released while running: still counted until the run ends
    assert.equal(q.admitted, 1);
    release();
    await ra;
    assert.equal(q.admitted, 0);
    assert.equal(q.running, 0);
  });
});

describe('serve: API on the fixture model', { skip }, () => {
  let dir: string;
  let model: string;
  let app: FastifyInstance;
  let jpegs: Buffer[];
  let bomb: Buffer;
  const limits = { maxFiles: 3, maxFileBytes: 512 * 1024, maxBodyBytes: 1024 * 1024, maxPixels: 20_000_000 };
  const base = (): ServeOptions => ({ model, deviceModel: model, weights: MOBILENET, deviceWeights: MOBILENET, workers: 1, threads: 1, ...limits });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'phoneside-serve-'));
    model = await makeBundle(join(dir, 'fixture'));
    app = await createServer(base());
    jpegs = await Promise.all(IMAGES.map((f) => readFile(f)));
    // 25 Mpx of one colour: a few KB of PNG, far above the 20 Mpx limit (a decompression bomb).
    bomb = await sharp({ create: { width: 5000, height: 5000, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
  });
  after(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('GET /healthz and /readyz', async () => {
    const h = await app.inject({ url: '/healthz' });
    assert.equal(h.statusCode, 200);
    assert.deepEqual(h.json(), { status: 'ok' });
    const r = await app.inject({ url: '/readyz' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().status, 'ready');
    assert.equal(r.json().model.id, 'fixture');
  });

  test('GET /v1/models describes the loaded models', async () => {
    const res = await app.inject({ url: '/v1/models' });
    assert.equal(res.statusCode, 200);
    const body = res.json() as { models: { id: string; version: string; role: string; classes: string[]; preprocessing: { size: number } }[]; limits: { maxFiles: number } };
    assert.deepEqual(body.models.map((m) => m.role), ['server', 'device']);
    const m = body.models[0]!;
    assert.equal(m.id, 'fixture');
    assert.match(m.version, /^20240102-[0-9a-f]{12}$/); // the fixture's createdAt + content digest
    const digest = createHash('sha256').update(await readFile(join(model, 'manifest.json'))).update('\0').update(await readFile(join(model, 'weights.bin'))).digest('hex');
    assert.equal(m.version.slice(9), digest.slice(0, 12));
    assert.deepEqual(m.classes, CLASSES);
    assert.equal(m.preprocessing.size, 224);
    assert.equal(body.limits.maxFiles, limits.maxFiles);
  });

  test('POST /v1/classify, raw body: the same probabilities as the library', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0], headers: { 'content-type': 'image/jpeg' } });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as ClassifyJson;
    assert.equal(body.model.id, 'fixture');
    assert.equal(body.results.length, 1);
    const r = body.results[0]!;
    assert.equal(r.filename, null);
    assert.deepEqual(Object.keys(r.probabilities), CLASSES);
    const sum = Object.values(r.probabilities).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities sum to ${sum}`);
    assert.equal(r.predicted, argmax(r.probabilities));
    assert.equal(r.label, r.predicted);
    assert.equal(r.confidence, r.probabilities[r.predicted]);
    assert.ok(r.ms > 0 && body.ms >= r.ms);
    const clf = await Classifier.load(model, { weights: MOBILENET, threads: 1 });
    try {
      const expected = await clf.classify(IMAGES[0]!);
      for (const c of CLASSES) assert.ok(Math.abs(expected.probabilities[c]! - r.probabilities[c]!) < 1e-4, `${c}: ${expected.probabilities[c]} vs ${r.probabilities[c]}`);
    } finally {
      await clf.dispose();
    }
  });

  test('the type comes from the bytes: curl\'s default form type and no type at all both work', async () => {
    for (const headers of [{ 'content-type': 'application/x-www-form-urlencoded' }, {}]) {
      const res = await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[1], headers });
      assert.equal(res.statusCode, 200, res.body);
    }
  });

  test('multipart: several files, results in upload order with their filenames', async () => {
    const mp = multipart([
      { filename: 'a.jpg', type: 'image/jpeg', data: jpegs[0]! },
      { filename: 'b.jpg', type: 'image/jpeg', data: jpegs[1]! },
      { field: 'other', filename: 'c.bin', data: jpegs[0]! }, // any file field counts
    ], [{ name: 'note', value: 'ignored' }]);
    const res = await app.inject({ method: 'POST', url: '/v1/classify', ...mp });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as ClassifyJson;
    assert.deepEqual(body.results.map((r) => r.filename), ['a.jpg', 'b.jpg', 'c.bin']);
    assert.deepEqual(body.results[0]!.probabilities, body.results[2]!.probabilities);
    assert.notDeepEqual(body.results[0]!.probabilities, body.results[1]!.probabilities);
  });

  test('?minConfidence answers uncertain below it, and is validated', async () => {
    const plain = (await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] })).json() as ClassifyJson;
    const conf = plain.results[0]!.confidence;
    assert.ok(conf < 0.999, 'fixture probabilities are not saturated');
    const res = await app.inject({ method: 'POST', url: `/v1/classify?minConfidence=${Math.min(1, conf + 0.001)}`, payload: jpegs[0] });
    const r = (res.json() as ClassifyJson).results[0]!;
    assert.equal(r.label, 'uncertain');
    assert.equal(r.predicted, plain.results[0]!.predicted);
    const low = (await app.inject({ method: 'POST', url: `/v1/classify?minConfidence=${conf - 0.001}`, payload: jpegs[0] })).json() as ClassifyJson;
    assert.equal(low.results[0]!.label, plain.results[0]!.predicted);
    assertError(await app.inject({ method: 'POST', url: '/v1/classify?minConfidence=2', payload: jpegs[0] }), 400, 'bad_request');
    assertError(await app.inject({ method: 'POST', url: '/v1/classify?minConfidence=abc', payload: jpegs[0] }), 400, 'bad_request');
  });

  test('415: not an image, or an unsupported type (whatever the Content-Type says)', async () => {
    const text = assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: 'hello world', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    assert.equal(text.file, 'body');
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: '{"url":"http://example.com/a.jpg"}', headers: { 'content-type': 'application/json' } }), 415, 'unsupported_media_type');
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><image href="http://example.com/x.png"/></svg>';
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: svg, headers: { 'content-type': 'image/jpeg' } }), 415, 'unsupported_media_type');
    const heic = Buffer.concat([Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1'), Buffer.alloc(64)]);
    const e = assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: heic, headers: { 'content-type': 'image/heic' } }), 415, 'unsupported_media_type');
    assert.match(e.message, /HEIC/);
  });

  test('422: corrupt or truncated image', async () => {
    const e = assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0]!.subarray(0, 3000) }), 422, 'corrupt_image');
    assert.equal(e.file, 'body');
    const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(2000, 7)]);
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: garbage }), 422, 'corrupt_image');
  });

  test('413: body or image too large, and too many pixels (decompression bomb)', async () => {
    const big = Buffer.concat([jpegs[0]!, Buffer.alloc(limits.maxFileBytes)]);
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: big, headers: { 'content-type': 'image/jpeg' } }), 413, 'body_too_large');
    const oneBig = multipart([{ filename: 'big.jpg', data: big }]);
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...oneBig }), 413, 'image_too_large');
    // Each file under the per-image limit, all together over the body limit.
    const part = Buffer.concat([jpegs[0]!, Buffer.alloc(400 * 1024)]);
    const many = multipart([{ filename: '1.jpg', data: part }, { filename: '2.jpg', data: part }, { filename: '3.jpg', data: part }]);
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...many }), 413, 'body_too_large');
    assert.equal(bomb.length < limits.maxFileBytes, true);
    const e = assertError(await app.inject({ method: 'POST', url: '/v1/classify', payload: bomb, headers: { 'content-type': 'image/png' } }), 413, 'too_many_pixels');
    assert.match(e.message, /20000000 pixels/);
  });

  test('400: too many files, no file, empty image, malformed multipart', async () => {
    const four = multipart([0, 1, 2, 3].map((i) => ({ filename: `${i}.jpg`, data: jpegs[0]! })));
    const e = assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...four }), 400, 'too_many_files');
    assert.match(e.message, /at most 3/);
    assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...multipart([], [{ name: 'x', value: 'y' }]) }), 400, 'no_image');
    assertError(await app.inject({ method: 'POST', url: '/v1/classify' }), 400, 'no_image');
    const empty = assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...multipart([{ filename: 'empty.jpg', data: '' }]) }), 400, 'empty_image');
    assert.equal(empty.file, 'empty.jpg');
    const broken = { payload: Buffer.from('--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nabc'), headers: { 'content-type': 'multipart/form-data; boundary=xyz' } };
    const res = await app.inject({ method: 'POST', url: '/v1/classify', ...broken });
    assert.equal(res.statusCode, 400, res.body);
  });

  test('one bad file among good ones: the whole request fails naming it, nothing is classified', async () => {
    const before = metric((await app.inject({ url: '/metrics' })).body, 'phoneside_inference_duration_seconds_count');
    const mp = multipart([
      { filename: 'good.jpg', data: jpegs[0]! },
      { filename: 'cut.jpg', data: jpegs[1]!.subarray(0, 2500) },
      { filename: 'notes.txt', data: 'not an image' },
    ]);
    const e = assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...mp }), 415, 'unsupported_media_type');
    assert.equal(e.file, 'notes.txt'); // type checks come before decoding
    const mp2 = multipart([{ filename: 'good.jpg', data: jpegs[0]! }, { filename: 'cut.jpg', data: jpegs[1]!.subarray(0, 2500) }, { filename: 'bomb.png', data: bomb }]);
    const e2 = assertError(await app.inject({ method: 'POST', url: '/v1/classify', ...mp2 }), 422, 'corrupt_image');
    assert.equal(e2.file, 'cut.jpg');
    assert.deepEqual(e2.details?.map((d) => [d.file, d.status, d.code]), [['cut.jpg', 422, 'corrupt_image'], ['bomb.png', 413, 'too_many_pixels']]);
    const afterCount = metric((await app.inject({ url: '/metrics' })).body, 'phoneside_inference_duration_seconds_count');
    assert.equal(afterCount, before, 'no inference ran for failed requests');
  });

  test('404 and 405-ish: unknown routes answer JSON errors', async () => {
    assertError(await app.inject({ url: '/v1/nothing' }), 404, 'not_found');
    assertError(await app.inject({ method: 'GET', url: '/v1/classify' }), 404, 'not_found');
  });

  test('after all that the process still serves', async () => {
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] })).statusCode, 200);
  });

  test('GET /metrics: Prometheus text with requests, errors, latency histogram, queue depth', async () => {
    const res = await app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const t = res.body;
    assert.ok(metric(t, 'phoneside_http_requests_total', '{route="/v1/classify",method="POST",status="200"}') >= 5);
    assert.ok(metric(t, 'phoneside_http_errors_total', '{route="/v1/classify",code="corrupt_image"}') >= 2);
    assert.ok(metric(t, 'phoneside_http_errors_total', '{route="/v1/classify",code="too_many_files"}') >= 1);
    const count = metric(t, 'phoneside_http_request_duration_seconds_count', '{route="/v1/classify"}');
    assert.equal(metric(t, 'phoneside_http_request_duration_seconds_bucket', '{route="/v1/classify",le="+Inf"}'), count);
    assert.ok(count > 0);
    assert.equal(metric(t, 'phoneside_queue_depth'), 0);
    assert.equal(metric(t, 'phoneside_inference_running'), 0);
    assert.match(t, /^phoneside_queue_rejected_total 0$/m);
    assert.match(t, /^phoneside_model_info\{role="server",id="fixture",version="20240102-[0-9a-f]{12}"\} 1$/m);
    const images = ['back', 'front', 'none', 'uncertain'].reduce((a, l) => a + metric(t, 'phoneside_images_classified_total', `{label="${l}"}`), 0);
    assert.ok(images >= 8);
  });

  test('GET /docs: the OpenAPI description (JSON, or HTML for browsers)', async () => {
    const res = await app.inject({ url: '/docs' });
    assert.equal(res.statusCode, 200);
    const doc = res.json() as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/v1/classify', '/v1/models', '/healthz', '/readyz', '/metrics', '/models/device.onnx', '/models/device.json']) assert.ok(doc.paths[p], p);
    assert.deepEqual(Object.keys(doc.paths['/v1/classify']!['post']!.responses).sort(), ['200', '400', '401', '413', '415', '422', '503', '504']);
    assert.deepEqual((await app.inject({ url: '/docs/openapi.json' })).json(), doc);
    const html = await app.inject({ url: '/docs', headers: { accept: 'text/html,application/xhtml+xml' } });
    assert.match(String(html.headers['content-type']), /text\/html/);
    assert.match(html.body, /POST \/v1\/classify/);
    assert.doesNotMatch(html.body, /<script|https?:\/\/(?!www\.w3)/);
  });

  test('device model: /models/device.json describes /models/device.onnx, which gives the same probabilities', async () => {
    const j = await app.inject({ url: '/models/device.json' });
    assert.equal(j.statusCode, 200);
    const info = j.json() as { id: string; version: string; classes: string[]; preprocessing: { size: number; channelOrder: 'RGB' | 'BGR'; mean: number[]; std: number[]; resize: 'squash' }; thresholds: object; temperature: number; onnx: string; bytes: number; sha256: string };
    assert.equal(info.onnx, '/models/device.onnx');
    assert.deepEqual(info.classes, CLASSES);
    assert.equal(info.temperature, 1);
    assert.deepEqual(info.thresholds, {});
    assert.deepEqual(info.preprocessing, { size: 224, channelOrder: 'RGB', mean: [127.5, 127.5, 127.5], std: [127.5, 127.5, 127.5], resize: 'squash' });
    const o = await app.inject({ url: info.onnx });
    assert.equal(o.statusCode, 200);
    assert.equal(o.headers['content-type'], 'application/octet-stream');
    assert.equal(o.rawPayload.length, info.bytes);
    assert.equal(createHash('sha256').update(o.rawPayload).digest('hex'), info.sha256);
    const etag = String(o.headers['etag']);
    assert.equal((await app.inject({ url: info.onnx, headers: { 'if-none-match': etag } })).statusCode, 304);

    // Run it the way the page does: decode, resize, (pixel - mean) / std in 0..255 units, NCHW.
    const p = info.preprocessing;
    const rgb = await loadForModel(IMAGES[1]!, p.size, p.resize);
    const n = p.size * p.size;
    const x = new Float32Array(3 * n);
    const order = p.channelOrder === 'RGB' ? [0, 1, 2] : [2, 1, 0];
    for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) x[c * n + i] = (rgb.data[i * 3 + order[c]!]! - p.mean[c]!) / p.std[c]!;
    const session = await ort.InferenceSession.create(new Uint8Array(o.rawPayload), { intraOpNumThreads: 1 });
    const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, p.size, p.size]) });
    await session.release();
    const probs = Array.from(out['output']!.data as Float32Array);
    const server = ((await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[1] })).json() as ClassifyJson).results[0]!;
    CLASSES.forEach((c, i) => assert.ok(Math.abs(probs[i]! - server.probabilities[c]!) < 1e-4, `${c}: ${probs[i]} vs ${server.probabilities[c]}`));
  });

  test('security headers on every response; the CSP allows wasm and nothing remote', async () => {
    for (const url of ['/healthz', '/v1/models', '/models/device.json', '/nope', '/']) {
      const res = await app.inject({ url });
      const csp = String(res.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/, url);
      assert.match(csp, /'wasm-unsafe-eval'/);
      assert.match(csp, /img-src 'self' blob: data:/);
      assert.doesNotMatch(csp, /https?:|\*/);
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin');
      assert.equal(res.headers['cross-origin-embedder-policy'], 'require-corp');
    }
  });

  test('the web page and its files are served with their types (when the page is installed)', async (t) => {
    const { webAssets } = await import('../src/web/assets.js');
    let assets: { urlPath: string; file: string; contentType: string }[];
    try {
      assets = webAssets();
    } catch (err) {
      // An incomplete page gives 503 at '/', never a crash.
      assertError(await app.inject({ url: '/' }), 503, 'page_unavailable');
      t.skip(`web page not complete yet: ${(err as Error).message}`);
      return;
    }
    for (const a of assets) {
      const res = await app.inject({ url: a.urlPath });
      assert.equal(res.statusCode, 200, a.urlPath);
      assert.equal(res.headers['content-type'], a.contentType);
      assert.equal(res.rawPayload.length, (await readFile(a.file)).length);
      const again = await app.inject({ url: a.urlPath, headers: { 'if-none-match': String(res.headers['etag']) } });
      assert.equal(again.statusCode, 304);
    }
  });

  test('API key: required on /v1/*, not on health, metrics, the page or the device model', async () => {
    const keyed = await createServer({ ...base(), workers: 0, deviceModel: false, apiKey: 's3cret' });
    try {
      const noKey = await keyed.inject({ url: '/v1/models' });
      assertError(noKey, 401, 'unauthorized');
      assert.match(String(noKey.headers['www-authenticate']), /^Bearer/);
      assertError(await keyed.inject({ url: '/v1/models', headers: { authorization: 'Bearer nope' } }), 401, 'unauthorized');
      // Refused before the body is read or the queue is touched.
      assertError(await keyed.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] }), 401, 'unauthorized');
      assert.equal((await keyed.inject({ url: '/v1/models', headers: { authorization: 'Bearer s3cret' } })).statusCode, 200);
      assert.equal((await keyed.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0], headers: { 'x-api-key': 's3cret' } })).statusCode, 200);
      for (const url of ['/healthz', '/readyz', '/metrics', '/docs']) assert.equal((await keyed.inject({ url })).statusCode, 200, url);
      assertError(await keyed.inject({ url: '/models/device.json' }), 404, 'no_device_model');
      const doc = (await keyed.inject({ url: '/docs' })).json() as { paths: Record<string, Record<string, { security: unknown[] }>> };
      assert.ok(doc.paths['/v1/classify']!['post']!.security.length > 0);
    } finally {
      await keyed.close();
    }
  });

  test('in-process engine (workers 0) gives the same answers as the worker thread', async () => {
    const local = await createServer({ ...base(), workers: 0, deviceModel: false });
    try {
      const a = (await local.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[1] })).json() as ClassifyJson;
      const b = (await app.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[1] })).json() as ClassifyJson;
      for (const c of CLASSES) assert.ok(Math.abs(a.results[0]!.probabilities[c]! - b.results[0]!.probabilities[c]!) < 1e-5);
    } finally {
      await local.close();
    }
  });

  test('an on-device model that cannot load (offline, no weights) costs the page its device mode, not the API', async () => {
    const saved = { offline: env.offline, cacheDir: env.cacheDir, weightsDir: { ...env.weightsDir } };
    env.offline = true;
    env.cacheDir = join(dir, 'empty-cache');
    env.weightsDir = {};
    const local = await createServer({ ...base(), deviceModel: shippedModelPath('mobilenet_v2'), deviceWeights: undefined, workers: 0 });
    try {
      const e = assertError(await local.inject({ url: '/models/device.json' }), 503, 'device_model_unavailable');
      assert.match(e.message, /offline/);
      assert.match(e.message, /--device-weights/, 'the hint names the flag of serve');
      assertError(await local.inject({ url: '/models/device.onnx' }), 503, 'device_model_unavailable');
      assert.match((await local.inject({ url: '/v1/models' })).json().deviceModelError, /offline/);
      const ok = await local.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] });
      assert.equal(ok.statusCode, 200);
    } finally {
      await local.close();
      Object.assign(env, saved);
    }
  });

  test('full queue: 503 with Retry-After at once; the admitted ones complete', async () => {
    const g = gate();
    const busy = await createServer({ ...base(), deviceModel: false, queueSize: 1, testHooks: { beforeInference: g.wait } });
    try {
      const first = busy.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] });
      await g.entered; // the first holds the only inference slot
      const second = busy.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[1] }); // waits in the queue
      const depth = async (): Promise<number> => metric((await busy.inject({ url: '/metrics' })).body, 'phoneside_queue_depth');
      await until(async () => (await depth()) === 1, 'the second request to be queued');
      const t0 = performance.now();
      const third = await busy.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] });
      const ms = performance.now() - t0;
      const e = assertError(third, 503, 'busy');
      assert.match(e.message, /busy/);
      const retry = Number(third.headers['retry-after']);
      assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${third.headers['retry-after']}`);
      assert.ok(ms < 250, `503 took ${ms.toFixed(0)} ms`);
      const m = (await busy.inject({ url: '/metrics' })).body;
      assert.equal(metric(m, 'phoneside_queue_depth'), 1);
      assert.equal(metric(m, 'phoneside_inference_running'), 1);
      assert.equal(metric(m, 'phoneside_queue_rejected_total'), 1);
      assert.equal(metric(m, 'phoneside_http_errors_total', '{route="/v1/classify",code="busy"}'), 1);
      g.open();
      assert.equal((await first).statusCode, 200);
      assert.equal((await second).statusCode, 200);
      assert.equal((await busy.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] })).statusCode, 200);
    } finally {
      g.open();
      await busy.close();
    }
  });

  test('per-request timeout: 504, and the slot is freed once the run ends', async () => {
    const g = gate();
    const slow = await createServer({ ...base(), deviceModel: false, timeoutMs: 300, testHooks: { beforeInference: g.wait } });
    try {
      const t0 = performance.now();
      const res = await slow.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] });
      assertError(res, 504, 'timeout');
      assert.ok(performance.now() - t0 < 2000);
      let m = (await slow.inject({ url: '/metrics' })).body;
      assert.equal(metric(m, 'phoneside_timeouts_total'), 1);
      assert.equal(metric(m, 'phoneside_inference_running'), 1); // still running in the worker
      g.open();
      await until(async () => metric((await slow.inject({ url: '/metrics' })).body, 'phoneside_inference_running') === 0, 'the timed-out run to end');
      m = (await slow.inject({ url: '/metrics' })).body;
      assert.equal(metric(m, 'phoneside_inference_running'), 0);
      assert.equal(metric(m, 'phoneside_queue_depth'), 0);
      assert.equal((await slow.inject({ method: 'POST', url: '/v1/classify', payload: jpegs[0] })).statusCode, 200);
    } finally {
      g.open();
      await slow.close();
    }
  });

  test('real HTTP, chunked upload without Content-Length: the body limit is counted while reading', async () => {
    const srv = await startServer({ ...base(), deviceModel: false, port: 0 });
    try {
      const part = Buffer.concat([jpegs[0]!, Buffer.alloc(400 * 1024)]);
      const mp = multipart([{ filename: '1.jpg', data: part }, { filename: '2.jpg', data: part }, { filename: '3.jpg', data: part }]);
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest(`${srv.url}/v1/classify`, { method: 'POST', headers: { ...mp.headers, 'transfer-encoding': 'chunked' } }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        for (let i = 0; i < mp.payload.length; i += 64 * 1024) req.write(mp.payload.subarray(i, i + 64 * 1024));
        req.end();
      });
      assert.equal(status, 413, body);
      assert.equal((JSON.parse(body) as ErrorJson).error.code, 'body_too_large');
      const ok = await fetch(`${srv.url}/v1/classify`, { method: 'POST', body: new Uint8Array(jpegs[1]!) });
      assert.equal(ok.status, 200);
    } finally {
      await srv.close();
    }
  });

  test('graceful shutdown over real HTTP: in-flight requests finish, then it stops', async () => {
    const g = gate();
    const srv = await startServer({ ...base(), deviceModel: false, port: 0, testHooks: { beforeInference: g.wait } });
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const inflight = fetch(`${srv.url}/v1/classify`, { method: 'POST', body: new Uint8Array(jpegs[0]!), headers: { 'content-type': 'image/jpeg' } });
    await g.entered;
    let closed = false;
    const closing = srv.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(closed, false, 'close waits for the in-flight request');
    await assert.rejects(fetch(`${srv.url}/healthz`), 'no new connections while closing');
    g.open();
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as ClassifyJson).results.length, 1);
    await closing;
    assert.equal(closed, true);
  });
});


describe('serve: the command', () => {
  test('usage errors exit 2; --help prints the options', async () => {
    for (const args of [['--port', 'abc'], ['--port', '70000'], ['--workers=-1'], ['--max-image-mb', '0'], ['photo.jpg'], ['--device-model', 'x', '--no-device-model'], ['--bogus']]) {
      const f = fakeIO();
      assert.equal(await cmdServe(args, f.io), 2, args.join(' '));
      assert.match(f.err(), /^phoneside: [\s\S]+\nRun 'phoneside serve --help' for usage\.\n$/);
    }
    const h = fakeIO();
    assert.equal(await cmdServe(['--help'], h.io), 0);
    for (const opt of ['--model', '--host', '--port', '--api-key', '--workers', '--threads', '--queue', '--timeout', '--max-files', '--max-pixels']) assert.ok(h.out().includes(opt), opt);
  });

  test('--no-thresholds: parsed, and documented with ?thresholds=false', async () => {
    assert.equal(parseServeArgs(['--no-thresholds']).options.thresholds, false);
    assert.equal('thresholds' in parseServeArgs([]).options, false, 'thresholds apply by default');
    const h = fakeIO();
    assert.equal(await cmdServe(['--help'], h.io), 0);
    assert.match(h.out(), /--no-thresholds /);
    assert.match(h.out(), /\?thresholds=false/);
  });

  test('serves until SIGTERM, then stops cleanly with status 0', { skip }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'phoneside-serve-cli-'));
    try {
      const model = await makeBundle(join(dir, 'cli-fixture'));
      const f = fakeIO();
      const done = cmdServe(['--model', model, '--weights', MOBILENET, '--no-device-model', '--port', '0', '--quiet', '--workers', '1', '--threads', '1'], f.io);
      let url: string | undefined;
      for (let i = 0; i < 600 && url === undefined; i++) {
        url = /phoneside serve: (http:\/\/\S+)/.exec(f.err())?.[1];
        if (url === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(url, f.err());
      assert.match(f.err(), /model {6}cli-fixture \d{8}-[0-9a-f]{12}/);
      assert.match(f.err(), /inference {2}1 worker thread x 1 ONNX Runtime thread;/);
      const res = await fetch(`${url}/v1/classify`, { method: 'POST', body: new Uint8Array(await readFile(IMAGES[0]!)) });
      assert.equal(res.status, 200);
      process.emit('SIGTERM', 'SIGTERM');
      assert.equal(await done, 0);
      assert.match(f.err(), /SIGTERM, finishing requests in flight[\s\S]*stopped/);
      await assert.rejects(fetch(`${url}/healthz`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("serve: the model's thresholds (--no-thresholds, ?thresholds=false)", { skip }, () => {
  // Every class at 0.999: the fixture's unsaturated probabilities are all below, so 'uncertain'.
  const THRESHOLDS = { back: 0.999, front: 0.999, none: 0.999 };
  let dir: string;
  let model: string;
  let jpeg: Buffer;
  let on: FastifyInstance | undefined;
  let off: FastifyInstance | undefined;
  const opts = (): ServeOptions => ({ model, deviceModel: model, weights: MOBILENET, deviceWeights: MOBILENET, workers: 0, threads: 1 });
  const classify = async (app: FastifyInstance, query = ''): Promise<ClassifyJson['results'][number]> => {
    const res = await app.inject({ method: 'POST', url: `/v1/classify${query}`, payload: jpeg, headers: { 'content-type': 'image/jpeg' } });
    assert.equal(res.statusCode, 200, res.body);
    return (res.json() as ClassifyJson).results[0]!;
  };
  interface DeviceModule {
    checkDeviceInfo(raw: unknown): { thresholds: Record<string, number>; classes: string[] };
    decide(classes: string[], probs: ArrayLike<number>, thresholds: Record<string, number>): { label: string; predicted: string };
  }
  /** The page's on-device label for these probabilities, from what device.json tells it. */
  const pageLabel = async (app: FastifyInstance, probabilities: Record<string, number>): Promise<{ label: string; thresholds: Record<string, number> }> => {
    const device = (await import(pathToFileURL(join(webDir(), 'device-mode.js')).href)) as DeviceModule;
    const j = await app.inject({ url: '/models/device.json' });
    assert.equal(j.statusCode, 200);
    const info = device.checkDeviceInfo(j.json());
    return { label: device.decide(info.classes, info.classes.map((c) => probabilities[c]!), info.thresholds).label, thresholds: info.thresholds };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'phoneside-serve-thr-'));
    model = await makeBundle(join(dir, 'fixture-thresholds'), { thresholds: THRESHOLDS });
    jpeg = await readFile(IMAGES[0]!);
    on = await createServer(opts());
    off = await createServer({ ...opts(), thresholds: false });
  });
  after(async () => {
    await on?.close();
    await off?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("by default the model's thresholds apply; ?thresholds=false gives the raw label", async () => {
    const r = await classify(on!);
    assert.ok(r.confidence < 0.999, `fixture confidence ${r.confidence}`);
    assert.equal(r.label, 'uncertain');
    assert.equal(r.predicted, argmax(r.probabilities));
    const raw = await classify(on!, '?thresholds=false');
    assert.equal(raw.label, r.predicted);
    assert.deepEqual(raw.probabilities, r.probabilities);
    assert.equal((await classify(on!, '?thresholds=true')).label, 'uncertain');
    // minConfidence still applies without the model's thresholds.
    assert.equal((await classify(on!, `?thresholds=false&minConfidence=${Math.min(1, r.confidence + 0.001)}`)).label, 'uncertain');
    assertError(await on!.inject({ method: 'POST', url: '/v1/classify?thresholds=maybe', payload: jpeg }), 400, 'bad_request');
    const models = (await on!.inject({ url: '/v1/models' })).json() as { models: { role: string; thresholds: object; thresholdsApplied: boolean }[] };
    assert.deepEqual(models.models[0], { ...models.models[0], role: 'server', thresholds: THRESHOLDS, thresholdsApplied: true });
  });

  test('--no-thresholds: the raw label by default; ?thresholds=true turns them on', async () => {
    const r = await classify(off!);
    assert.equal(r.label, r.predicted);
    assert.equal((await classify(off!, '?thresholds=false')).label, r.predicted);
    assert.equal((await classify(off!, '?thresholds=true')).label, 'uncertain');
    const models = (await off!.inject({ url: '/v1/models' })).json() as { models: { role: string; thresholds: object; thresholdsApplied: boolean }[] };
    // /v1/models still shows the model's thresholds, and that they are off.
    assert.deepEqual(models.models[0], { ...models.models[0], role: 'server', thresholds: THRESHOLDS, thresholdsApplied: false });
  });

  test('the on-device page gets the thresholds from /models/device.json and applies them (none under --no-thresholds)', async () => {
    const { probabilities, predicted } = await classify(on!, '?thresholds=false');
    const page = await pageLabel(on!, probabilities);
    assert.deepEqual(page.thresholds, THRESHOLDS);
    assert.equal(page.label, 'uncertain');
    const pageOff = await pageLabel(off!, probabilities);
    assert.deepEqual(pageOff.thresholds, {});
    assert.equal(pageOff.label, predicted);
  });

  test('the OpenAPI description documents ?thresholds with the server\'s default', async () => {
    type Param = { name: string; in: string; schema: { type: string; default?: boolean }; description: string };
    const params = async (app: FastifyInstance): Promise<Param[]> =>
      ((await app.inject({ url: '/docs/openapi.json' })).json() as { paths: Record<string, { post: { parameters: Param[] } }> }).paths['/v1/classify']!.post.parameters;
    const p = (await params(on!)).find((x) => x.name === 'thresholds');
    assert.ok(p, 'thresholds parameter documented');
    assert.equal(p.in, 'query');
    assert.deepEqual(p.schema, { type: 'boolean', default: true });
    assert.match(p.description, /thresholds=false/);
    const q = (await params(off!)).find((x) => x.name === 'thresholds')!;
    assert.equal(q.schema.default, false);
    assert.match(q.description, /--no-thresholds/);
  });
});

describe('serve: the shipped models', { skip }, () => {
  let app: FastifyInstance;
  const savedWeights = { ...env.weightsDir };
  before(async () => {
    // The default model is an ensemble with a MobileNetV2 member: its weights from ../shared.
    env.weightsDir['mobilenet_v2_0.35'] = MOBILENET;
    app = await createServer({ deviceWeights: MOBILENET });
  });
  after(async () => {
    await app?.close();
    for (const k of Object.keys(env.weightsDir)) delete env.weightsDir[k];
    Object.assign(env.weightsDir, savedWeights);
  });

  test('defaults: the ensemble answers /v1/classify, mobilenet_v2 is the device model, group-CV metrics from the manifests', async () => {
    const models = (await app.inject({ url: '/v1/models' })).json() as { models: { id: string; role: string; metrics: { accuracy: number; macroF1: number; worstGroup?: { group: string } } | null; card: string | null }[] };
    assert.deepEqual(models.models.map((m) => [m.role, m.id]), [['server', 'ensemble'], ['device', 'mobilenet_v2']]);
    for (const m of models.models) {
      const file = m.id === 'ensemble' ? 'ensemble.json' : 'manifest.json';
      const manifest = JSON.parse(await readFile(join(shippedModelPath(m.id), file), 'utf8')) as { info: { groupCv: { pooled: { accuracy: number; macroF1: number; worstGroup: { group: string } } } } };
      assert.equal(m.metrics?.accuracy, manifest.info.groupCv.pooled.accuracy);
      assert.equal(m.metrics?.macroF1, manifest.info.groupCv.pooled.macroF1);
      assert.equal(m.metrics?.worstGroup?.group, manifest.info.groupCv.pooled.worstGroup.group);
      assert.match(m.card ?? '', /model card/);
    }
    const device = (await app.inject({ url: '/models/device.json' })).json() as { id: string; preprocessing: { channelOrder: string } };
    assert.equal(device.id, 'mobilenet_v2');
    assert.equal(device.preprocessing.channelOrder, 'RGB');
  });

  test('real phone photos get their folder\'s label (these photos are in the shipped model\'s training set)', async () => {
    const files: { cls: string; name: string; data: Buffer }[] = [];
    for (const cls of CLASSES) {
      const names = (await readdir(join(DATA, cls))).filter((f) => f.endsWith('.jpg')).sort().slice(0, 4);
      for (const name of names) files.push({ cls, name, data: await readFile(join(DATA, cls, name)) });
    }
    const mp = multipart(files.map((f) => ({ filename: `${f.cls}-${basename(f.name)}`, type: 'image/jpeg', data: f.data })));
    const res = await app.inject({ method: 'POST', url: '/v1/classify', ...mp });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as ClassifyJson;
    assert.equal(body.model.id, 'ensemble');
    assert.match(body.model.version, /^\d{8}-[0-9a-f]{12}$/);
    assert.deepEqual(body.results.map((r) => r.filename), files.map((f) => `${f.cls}-${f.name}`));
    // The service answers exactly what the library does with the same model...
    const clf = await Classifier.load(shippedModelPath('ensemble'));
    try {
      for (const [i, f] of files.entries()) {
        const expected = await clf.classify(new Uint8Array(f.data));
        for (const c of CLASSES) assert.ok(Math.abs(expected.probabilities[c]! - body.results[i]!.probabilities[c]!) < 1e-4, `${f.name} ${c}`);
      }
    } finally {
      await clf.dispose();
    }
    // ...and that is far better than chance (1/3) on photos the model was trained on.
    const right = body.results.filter((r, i) => r.predicted === files[i]!.cls).length;
    assert.ok(right >= (2 * files.length) / 3, `${right} of ${files.length} right`);
  });
});

describe('serve: inference workers', { skip }, () => {
  test('a worker that dies with a job fails only that job, a fresh worker takes its place, and close lets running jobs finish', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'phoneside-pool-'));
    const { exportClassifier } = await import('../src/infer/export.js');
    const { startEngine } = await import('../src/serve/pool.js');
    const onnxPath = join(dir, 'model.onnx');
    await exportClassifier(await makeBundle(join(dir, 'fixture')), onnxPath, { weights: MOBILENET });
    const engine = await startEngine({ model: { path: onnxPath }, size: 224, classes: 3, workers: 1, threads: 1 });
    try {
      const input = new Float32Array(3 * 224 * 224).fill(0.1);
      const before = await engine.run(input.slice(), 1);
      // Make the only worker die with a job assigned to it, as a crash would: it is told to exit,
      // then handed a job (messages arrive in order, so it exits before the job starts).
      const slots = (engine as unknown as { slots: { worker: { postMessage(m: unknown): void } }[] }).slots;
      assert.equal(slots.length, 1);
      slots[0]!.worker.postMessage({ type: 'exit', code: 3 });
      const doomed = engine.run(input.slice(), 1);
      const queued = engine.run(input.slice(), 1);
      await assert.rejects(doomed, /inference worker stopped: exit code 3/);
      // The job queued behind it is not lost: the replacement answers it, and answers the same.
      const requeued = await queued;
      for (let i = 0; i < 3; i++) assert.ok(Math.abs(requeued[i]! - before[i]!) < 1e-6);
      // Closing while a job runs lets it finish rather than tearing the thread down mid-inference
      // (which aborts the process in onnxruntime-node); queued jobs are refused.
      const batch = 16;
      const running = engine.run(new Float32Array(batch * input.length).fill(0.1), batch);
      const waiting = assert.rejects(engine.run(input.slice(), 1), /inference engine is closed/);
      await new Promise((r) => setTimeout(r, 20));
      await engine.close();
      assert.equal((await running).length, batch * 3);
      await waiting;
      await assert.rejects(engine.run(input.slice(), 1), /inference engine is closed/);
    } finally {
      await engine.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
