/**
 * POST /v1/classify (src/serve/classify-route.ts, sniff.ts, decode.ts, errors.ts) on the fixture
 * model through fastify's inject(): answers equal to the library's, types from magic bytes, every
 * error status, the per-request timeout, the body limit over real HTTP, and the metrics all that
 * leaves behind (service-metrics.ts).
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { before, describe, test } from 'node:test';
import { Classifier } from '../src/infer/classifier.js';
import { createServer, startServer } from '../src/serve/server.js';
import { sniffImage } from '../src/serve/sniff.js';
import { CLASSES } from './helpers/infer-fixture.js';
import { IMAGES, NO_DATA as skip } from './helpers/paths.js';
import { argmax, assertError, decompressionBomb, gate, LIMITS, metric, multipart, useServeFixture, until, type ClassifyJson, type ErrorJson } from './helpers/serve.js';

describe('serve: magic bytes', () => {
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
});

describe('serve: POST /v1/classify on the fixture model', { skip }, () => {
  const s = useServeFixture({ app: true });
  let bomb: Buffer;
  before(async () => {
    bomb = await decompressionBomb();
  });

  test('POST /v1/classify, raw body: the same probabilities as the library', async () => {
    const res = await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0], headers: { 'content-type': 'image/jpeg' } });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as ClassifyJson;
    assert.equal(body.model.id, 'fixture');
    assert.equal(body.results.length, 1);
    const r = body.results[0]!;
    // The library's Prediction (label, predicted, confidence, probabilities), plus filename and ms.
    assert.deepEqual(Object.keys(r), ['filename', 'label', 'predicted', 'confidence', 'probabilities', 'ms']);
    assert.equal(r.filename, null);
    assert.deepEqual(Object.keys(r.probabilities), CLASSES);
    const sum = Object.values(r.probabilities).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities sum to ${sum}`);
    assert.equal(r.predicted, argmax(r.probabilities));
    assert.equal(r.label, r.predicted);
    assert.equal(r.confidence, r.probabilities[r.predicted]);
    assert.ok(r.ms > 0 && body.ms >= r.ms);
    const clf = await Classifier.load(s.fx.model, { threads: 1 });
    try {
      const expected = await clf.classify(IMAGES[0]!);
      assert.equal(r.predicted, expected.predicted);
      assert.equal(r.label, expected.label);
      for (const c of CLASSES) assert.ok(Math.abs(expected.probabilities[c]! - r.probabilities[c]!) < 1e-4, `${c}: ${expected.probabilities[c]} vs ${r.probabilities[c]}`);
    } finally {
      await clf.dispose();
    }
  });

  test('the type comes from the bytes: curl\'s default form type and no type at all both work', async () => {
    for (const headers of [{ 'content-type': 'application/x-www-form-urlencoded' }, {}]) {
      const res = await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[1], headers });
      assert.equal(res.statusCode, 200, res.body);
    }
  });

  test('multipart: several files, results in upload order with their filenames', async () => {
    const mp = multipart([
      { filename: 'a.jpg', type: 'image/jpeg', data: s.jpegs[0]! },
      { filename: 'b.jpg', type: 'image/jpeg', data: s.jpegs[1]! },
      { field: 'other', filename: 'c.bin', data: s.jpegs[0]! }, // any file field counts
    ], [{ name: 'note', value: 'ignored' }]);
    const res = await s.app.inject({ method: 'POST', url: '/v1/classify', ...mp });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as ClassifyJson;
    assert.deepEqual(body.results.map((r) => r.filename), ['a.jpg', 'b.jpg', 'c.bin']);
    assert.deepEqual(body.results[0]!.probabilities, body.results[2]!.probabilities);
    assert.notDeepEqual(body.results[0]!.probabilities, body.results[1]!.probabilities);
  });

  test('?minConfidence answers uncertain below it, and is validated', async () => {
    const plain = (await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] })).json() as ClassifyJson;
    const conf = plain.results[0]!.confidence;
    assert.ok(conf < 0.999, 'fixture probabilities are not saturated');
    const res = await s.app.inject({ method: 'POST', url: `/v1/classify?minConfidence=${Math.min(1, conf + 0.001)}`, payload: s.jpegs[0] });
    const r = (res.json() as ClassifyJson).results[0]!;
    assert.equal(r.label, 'uncertain');
    assert.equal(r.predicted, plain.results[0]!.predicted);
    const low = (await s.app.inject({ method: 'POST', url: `/v1/classify?minConfidence=${conf - 0.001}`, payload: s.jpegs[0] })).json() as ClassifyJson;
    assert.equal(low.results[0]!.label, plain.results[0]!.predicted);
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify?minConfidence=2', payload: s.jpegs[0] }), 400, 'bad_request');
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify?minConfidence=abc', payload: s.jpegs[0] }), 400, 'bad_request');
  });

  test('415: not an image, or an unsupported type (whatever the Content-Type says)', async () => {
    const text = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: 'hello world', headers: { 'content-type': 'text/plain' } }), 415, 'unsupported_media_type');
    assert.equal(text.file, 'body');
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: '{"url":"http://example.com/a.jpg"}', headers: { 'content-type': 'application/json' } }), 415, 'unsupported_media_type');
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><image href="http://example.com/x.png"/></svg>';
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: svg, headers: { 'content-type': 'image/jpeg' } }), 415, 'unsupported_media_type');
    const heic = Buffer.concat([Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic', 'latin1'), Buffer.alloc(64)]);
    const e = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: heic, headers: { 'content-type': 'image/heic' } }), 415, 'unsupported_media_type');
    assert.match(e.message, /HEIC/);
  });

  test('422: corrupt or truncated image', async () => {
    const e = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0]!.subarray(0, 3000) }), 422, 'corrupt_image');
    assert.equal(e.file, 'body');
    const garbage = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(2000, 7)]);
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: garbage }), 422, 'corrupt_image');
  });

  test('413: body or image too large, and too many pixels (decompression bomb)', async () => {
    const big = Buffer.concat([s.jpegs[0]!, Buffer.alloc(LIMITS.maxFileBytes)]);
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: big, headers: { 'content-type': 'image/jpeg' } }), 413, 'body_too_large');
    const oneBig = multipart([{ filename: 'big.jpg', data: big }]);
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...oneBig }), 413, 'image_too_large');
    // Each file under the per-image limit, all together over the body limit.
    const part = Buffer.concat([s.jpegs[0]!, Buffer.alloc(400 * 1024)]);
    const many = multipart([{ filename: '1.jpg', data: part }, { filename: '2.jpg', data: part }, { filename: '3.jpg', data: part }]);
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...many }), 413, 'body_too_large');
    assert.equal(bomb.length < LIMITS.maxFileBytes, true);
    const e = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', payload: bomb, headers: { 'content-type': 'image/png' } }), 413, 'too_many_pixels');
    assert.match(e.message, /20000000 pixels/);
  });

  test('400: too many files, no file, empty image, malformed multipart', async () => {
    const four = multipart([0, 1, 2, 3].map((i) => ({ filename: `${i}.jpg`, data: s.jpegs[0]! })));
    const e = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...four }), 400, 'too_many_files');
    assert.match(e.message, /at most 3/);
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...multipart([], [{ name: 'x', value: 'y' }]) }), 400, 'no_image');
    assertError(await s.app.inject({ method: 'POST', url: '/v1/classify' }), 400, 'no_image');
    const empty = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...multipart([{ filename: 'empty.jpg', data: '' }]) }), 400, 'empty_image');
    assert.equal(empty.file, 'empty.jpg');
    const broken = { payload: Buffer.from('--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\nabc'), headers: { 'content-type': 'multipart/form-data; boundary=xyz' } };
    const res = await s.app.inject({ method: 'POST', url: '/v1/classify', ...broken });
    assert.equal(res.statusCode, 400, res.body);
  });

  test('one bad file among good ones: the whole request fails naming it, nothing is classified', async () => {
    const before = metric((await s.app.inject({ url: '/metrics' })).body, 'phoneside_inference_duration_seconds_count');
    const mp = multipart([
      { filename: 'good.jpg', data: s.jpegs[0]! },
      { filename: 'cut.jpg', data: s.jpegs[1]!.subarray(0, 2500) },
      { filename: 'notes.txt', data: 'not an image' },
    ]);
    const e = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...mp }), 415, 'unsupported_media_type');
    assert.equal(e.file, 'notes.txt'); // type checks come before decoding
    const mp2 = multipart([{ filename: 'good.jpg', data: s.jpegs[0]! }, { filename: 'cut.jpg', data: s.jpegs[1]!.subarray(0, 2500) }, { filename: 'bomb.png', data: bomb }]);
    const e2 = assertError(await s.app.inject({ method: 'POST', url: '/v1/classify', ...mp2 }), 422, 'corrupt_image');
    assert.equal(e2.file, 'cut.jpg');
    assert.deepEqual(e2.details?.map((d) => [d.file, d.status, d.code]), [['cut.jpg', 422, 'corrupt_image'], ['bomb.png', 413, 'too_many_pixels']]);
    const afterCount = metric((await s.app.inject({ url: '/metrics' })).body, 'phoneside_inference_duration_seconds_count');
    assert.equal(afterCount, before, 'no inference ran for failed requests');
  });

  test('404 and 405-ish: unknown routes answer JSON errors', async () => {
    assertError(await s.app.inject({ url: '/v1/nothing' }), 404, 'not_found');
    assertError(await s.app.inject({ method: 'GET', url: '/v1/classify' }), 404, 'not_found');
  });

  test('after all that the process still serves', async () => {
    assert.equal((await s.app.inject({ url: '/healthz' })).statusCode, 200);
    assert.equal((await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] })).statusCode, 200);
  });

  test('GET /metrics: Prometheus text with requests, errors, latency histogram, queue depth', async () => {
    const res = await s.app.inject({ url: '/metrics' });
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

  test('per-request timeout: 504, and the slot is freed once the run ends', async () => {
    const g = gate();
    const slow = await createServer({ ...s.base(), deviceModel: false, timeoutMs: 300, testHooks: { beforeInference: g.wait } });
    try {
      const t0 = performance.now();
      const res = await slow.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] });
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
      assert.equal((await slow.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] })).statusCode, 200);
    } finally {
      g.open();
      await slow.close();
    }
  });

  test('real HTTP, chunked upload without Content-Length: the body limit is counted while reading', async () => {
    const srv = await startServer({ ...s.base(), deviceModel: false, port: 0 });
    try {
      const part = Buffer.concat([s.jpegs[0]!, Buffer.alloc(400 * 1024)]);
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
      const ok = await fetch(`${srv.url}/v1/classify`, { method: 'POST', body: new Uint8Array(s.jpegs[1]!) });
      assert.equal(ok.status, 200);
    } finally {
      await srv.close();
    }
  });
});
