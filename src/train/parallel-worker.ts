/**
 * One data-parallel replica of the fine-tuned top blocks (see parallel.ts): its own tfjs backend
 * (wasm with our gradient kernels, or cpu) on its own thread. It never steps an optimiser: before
 * every job it copies the coordinator's current top weights from shared memory, so replicas
 * cannot drift.
 *
 * Jobs (messages from the coordinator):
 *   forward  {x, n}  -> {pooled}           the top's output for n trunk-feature rows (inference)
 *   step     {x, n}  -> {pooled} ... {grads}
 *     Forward inside tf.variableGrads; posts the pooled output, then blocks (Atomics.wait) until the
 *     coordinator has written d loss / d pooled into shared memory and raised the flag; returns
 *     sum(pooled * dPooled) so that the tape yields this shard's weight gradients: J^T dPooled.
 *     Blocking inside the tape keeps the forward activations: no recomputation.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import type { LayerGraph } from '../backbones/graph.js';
import { createGraphModule } from '../model/graph-tfjs.js';
import { initTrainingBackend, type TrainingBackend } from './backend.js';

export interface ParallelWorkerData {
  graph: LayerGraph;
  featureShape: number[];
  backend: TrainingBackend;
  /** Current top weights, all variables back to back (written by the coordinator). */
  weights: SharedArrayBuffer;
  /** [0]: 0 = waiting, 1 = dPooled ready, 2 = abort the step. */
  flag: SharedArrayBuffer;
  /** d loss / d pooled for this worker's rows, [n, width]. */
  dPooled: SharedArrayBuffer;
}

export type ParallelJob = { kind: 'forward' | 'step'; x: Float32Array; n: number };
export type ParallelReply =
  | { kind: 'ready'; sizes: number[] }
  | { kind: 'pooled'; pooled: Float32Array }
  | { kind: 'grads'; grads: Float32Array[] }
  | { kind: 'error'; message: string };

const port = parentPort!;
const data = workerData as ParallelWorkerData;

async function main(): Promise<void> {
  await initTrainingBackend(data.backend);
  const top = createGraphModule(data.graph, { trainable: true });
  const vars = top.trainableVariables;
  const sizes = vars.map((v) => v.size);
  const weights = new Float32Array(data.weights);
  const flag = new Int32Array(data.flag);
  const dShared = new Float32Array(data.dPooled);

  const syncWeights = (): void => {
    let off = 0;
    tf.tidy(() => {
      vars.forEach((v) => {
        v.assign(tf.tensor(weights.subarray(off, off + v.size), v.shape));
        off += v.size;
      });
    });
  };

  port.on('message', (job: ParallelJob) => {
    try {
      syncWeights();
      const x = tf.tensor(job.x, [job.n, ...data.featureShape]);
      if (job.kind === 'forward') {
        const pooled = tf.tidy(() => top.apply(x as tf.Tensor4D));
        const out = (pooled.dataSync() as Float32Array).slice();
        tf.dispose([x, pooled]);
        port.postMessage({ kind: 'pooled', pooled: out } satisfies ParallelReply, [out.buffer]);
        return;
      }
      const { grads } = tf.tidy(() =>
        tf.variableGrads(() => {
          const pooled = top.apply(x as tf.Tensor4D) as tf.Tensor2D;
          const p = (pooled.dataSync() as Float32Array).slice();
          port.postMessage({ kind: 'pooled', pooled: p } satisfies ParallelReply, [p.buffer]);
          Atomics.wait(flag, 0, 0);
          const state = Atomics.exchange(flag, 0, 0);
          if (state !== 1) throw new Error('step aborted by the coordinator');
          const width = pooled.shape[1]!;
          const dy = tf.tensor2d(dShared.slice(0, job.n * width), [job.n, width]);
          return tf.sum(tf.mul(pooled, dy)) as tf.Scalar;
        }, vars),
      );
      x.dispose();
      // Copies: the cpu backend's dataSync returns its own storage, which must not be transferred.
      const out = vars.map((v) => (grads[v.name]!.dataSync() as Float32Array).slice());
      tf.dispose(Object.values(grads));
      port.postMessage({ kind: 'grads', grads: out } satisfies ParallelReply, out.map((a) => a.buffer));
    } catch (err) {
      port.postMessage({ kind: 'error', message: err instanceof Error ? err.message : String(err) } satisfies ParallelReply);
    }
  });
  port.postMessage({ kind: 'ready', sizes } satisfies ParallelReply);
}

main().catch((err: unknown) => {
  port.postMessage({ kind: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) } satisfies ParallelReply);
});
