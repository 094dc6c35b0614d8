/**
 * What the server serves besides the API (src/serve/server.ts, static.ts, openapi.ts): health and
 * readiness, the OpenAPI description, security headers, the web page; and its lifecycle over real
 * HTTP (graceful shutdown).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { startServer } from '../src/serve/server.js';
import { NO_DATA as skip } from './helpers/paths.js';
import { assertError, gate, useServeFixture, type ClassifyJson } from './helpers/serve.js';

describe('serve: pages, docs and lifecycle on the fixture model', { skip }, () => {
  const s = useServeFixture({ app: true });

  test('GET /healthz and /readyz', async () => {
    const h = await s.app.inject({ url: '/healthz' });
    assert.equal(h.statusCode, 200);
    assert.deepEqual(h.json(), { status: 'ok' });
    const r = await s.app.inject({ url: '/readyz' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.json().status, 'ready');
    assert.equal(r.json().model.id, 'fixture');
  });

  test('GET /docs: the OpenAPI description (JSON, or HTML for browsers)', async () => {
    const res = await s.app.inject({ url: '/docs' });
    assert.equal(res.statusCode, 200);
    const doc = res.json() as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    assert.equal(doc.openapi, '3.1.0');
    for (const p of ['/v1/classify', '/v1/models', '/healthz', '/readyz', '/metrics', '/models/device.onnx', '/models/device.json']) assert.ok(doc.paths[p], p);
    assert.deepEqual(Object.keys(doc.paths['/v1/classify']!['post']!.responses).sort(), ['200', '400', '401', '408', '413', '415', '422', '503', '504']);
    assert.deepEqual((await s.app.inject({ url: '/docs/openapi.json' })).json(), doc);
    const html = await s.app.inject({ url: '/docs', headers: { accept: 'text/html,application/xhtml+xml' } });
    assert.match(String(html.headers['content-type']), /text\/html/);
    assert.match(html.body, /POST \/v1\/classify/);
    assert.doesNotMatch(html.body, /<script|https?:\/\/(?!www\.w3)/);
  });

  test('security headers on every response; the CSP allows wasm and nothing remote', async () => {
    for (const url of ['/healthz', '/v1/models', '/models/device.json', '/nope', '/']) {
      const res = await s.app.inject({ url });
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
      assertError(await s.app.inject({ url: '/' }), 503, 'page_unavailable');
      t.skip(`web page not complete yet: ${(err as Error).message}`);
      return;
    }
    for (const a of assets) {
      const res = await s.app.inject({ url: a.urlPath });
      assert.equal(res.statusCode, 200, a.urlPath);
      assert.equal(res.headers['content-type'], a.contentType);
      assert.equal(res.rawPayload.length, (await readFile(a.file)).length);
      const again = await s.app.inject({ url: a.urlPath, headers: { 'if-none-match': String(res.headers['etag']) } });
      assert.equal(again.statusCode, 304);
    }
  });

  test('graceful shutdown over real HTTP: in-flight requests finish, then it stops', async () => {
    const g = gate();
    const srv = await startServer({ ...s.base(), deviceModel: false, port: 0, testHooks: { beforeInference: g.wait } });
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const inflight = fetch(`${srv.url}/v1/classify`, { method: 'POST', body: new Uint8Array(s.jpegs[0]!), headers: { 'content-type': 'image/jpeg' } });
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
