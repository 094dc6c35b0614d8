/**
 * The API key (src/serve/auth.ts): required on /v1/*, not on health, metrics, the page or the
 * device model, and refused before the body is read.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createServer } from '../src/serve/server.js';
import { NO_DATA as skip } from './helpers/paths.js';
import { assertError, useServeFixture } from './helpers/serve.js';

describe('serve: API key', { skip }, () => {
  const s = useServeFixture({ app: false });

  test('API key: required on /v1/*, not on health, metrics, the page or the device model', async () => {
    const keyed = await createServer({ ...s.base(), workers: 0, deviceModel: false, apiKey: 's3cret' });
    try {
      const noKey = await keyed.inject({ url: '/v1/models' });
      assertError(noKey, 401, 'unauthorized');
      assert.match(String(noKey.headers['www-authenticate']), /^Bearer/);
      assertError(await keyed.inject({ url: '/v1/models', headers: { authorization: 'Bearer nope' } }), 401, 'unauthorized');
      // Refused before the body is read or the queue is touched.
      assertError(await keyed.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] }), 401, 'unauthorized');
      assert.equal((await keyed.inject({ url: '/v1/models', headers: { authorization: 'Bearer s3cret' } })).statusCode, 200);
      assert.equal((await keyed.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0], headers: { 'x-api-key': 's3cret' } })).statusCode, 200);
      for (const url of ['/healthz', '/readyz', '/metrics', '/docs']) assert.equal((await keyed.inject({ url })).statusCode, 200, url);
      assertError(await keyed.inject({ url: '/models/device.json' }), 404, 'no_device_model');
      const doc = (await keyed.inject({ url: '/docs' })).json() as { paths: Record<string, Record<string, { security: unknown[] }>> };
      assert.ok(doc.paths['/v1/classify']!['post']!.security.length > 0);
    } finally {
      await keyed.close();
    }
  });
});
