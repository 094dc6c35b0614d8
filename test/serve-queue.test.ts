/**
 * Admission control (src/serve/queue.ts): the InferenceQueue itself, and a full queue answering
 * 503 with Retry-After at once while the admitted requests complete.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { InferenceQueue, QueueFullError } from '../src/serve/queue.js';
import { createServer } from '../src/serve/server.js';
import { NO_DATA as skip } from './helpers/paths.js';
import { assertError, gate, metric, useServeFixture, until } from './helpers/serve.js';

describe('serve: InferenceQueue', () => {
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

  test('InferenceQueue: held work (a decode) keeps its place after release until it ends; check() refuses like admit() without admitting', async () => {
    const q = new InferenceQueue({ concurrency: 1, capacity: 0 });
    let finish!: () => void;
    const decoding = new Promise<void>((r) => (finish = r));
    const t = q.admit();
    const held = t.hold(() => decoding);
    t.release(); // its client went away mid-decode: the decode still runs, so the place stays taken
    assert.equal(q.admitted, 1);
    assert.throws(() => q.check(), QueueFullError);
    assert.throws(() => q.admit(), QueueFullError);
    assert.equal(q.rejected, 2);
    finish();
    await held;
    assert.equal(q.admitted, 0);
    assert.doesNotThrow(() => q.check());
    assert.equal(q.admitted, 0, 'check() admits nothing');
    await assert.rejects(t.hold(async () => 1), /released/);
  });
});

describe('serve: a full queue', { skip }, () => {
  const s = useServeFixture({ app: false });

  test('full queue: 503 with Retry-After at once; the admitted ones complete', async () => {
    const g = gate();
    const busy = await createServer({ ...s.base(), deviceModel: false, queueSize: 1, testHooks: { beforeInference: g.wait } });
    try {
      const first = busy.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] });
      await g.entered; // the first holds the only inference slot
      const second = busy.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[1] }); // waits in the queue
      const depth = async (): Promise<number> => metric((await busy.inject({ url: '/metrics' })).body, 'phoneside_queue_depth');
      await until(async () => (await depth()) === 1, 'the second request to be queued');
      const t0 = performance.now();
      const third = await busy.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] });
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
      assert.equal((await busy.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[0] })).statusCode, 200);
    } finally {
      g.open();
      await busy.close();
    }
  });
});
