/**
 * Where inference runs (src/serve/pool.ts): worker threads, the in-process engine (workers 0)
 * giving the same answers, and a worker that dies with a job.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createServer } from '../src/serve/server.js';
import { CLASSES, makeBundle, useSharedMobilenet } from './helpers/infer-fixture.js';
import { NO_DATA as skip } from './helpers/paths.js';
import { useServeFixture, type ClassifyJson } from './helpers/serve.js';

describe('serve: in-process engine', { skip }, () => {
  const s = useServeFixture({ app: true });

  test('in-process engine (workers 0) gives the same answers as the worker thread', async () => {
    const local = await createServer({ ...s.base(), workers: 0, deviceModel: false });
    try {
      const a = (await local.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[1] })).json() as ClassifyJson;
      const b = (await s.app.inject({ method: 'POST', url: '/v1/classify', payload: s.jpegs[1] })).json() as ClassifyJson;
      for (const c of CLASSES) assert.ok(Math.abs(a.results[0]!.probabilities[c]! - b.results[0]!.probabilities[c]!) < 1e-5);
    } finally {
      await local.close();
    }
  });
});

describe('serve: inference workers', { skip }, () => {
  test('a worker that dies with a job fails only that job, a fresh worker takes its place, and close lets running jobs finish', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'phoneside-pool-'));
    const { exportClassifier } = await import('../src/infer/export.js');
    const { startEngine } = await import('../src/serve/pool.js');
    const onnxPath = join(dir, 'model.onnx');
    const restoreEnv = useSharedMobilenet();
    await exportClassifier({ model: await makeBundle(join(dir, 'fixture')), out: onnxPath }).finally(restoreEnv);
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
