/**
 * Data-parallel training of the fine-tuned top blocks on worker threads: tfjs-wasm computes on
 * one thread in Node (its threaded build does not load there), so each worker runs its own wasm
 * backend with a replica of the top blocks, and the batch is split across them.
 *
 * One step, for a batch of trunk features split into contiguous shards (one per worker):
 *   1. every worker runs the top blocks forward on its shard and posts the pooled output;
 *   2. the coordinator (the caller's thread, which holds the master model) joins the pooled rows
 *      in batch order and runs the head forward and backward on the whole batch, so the head's
 *      BatchNorm sees exactly the batch statistics of single-threaded training; it yields the
 *      head's gradients and d loss / d pooled;
 *   3. each worker gets its rows of d loss / d pooled through shared memory and finishes the
 *      backward pass it kept open (no recomputation), posting its shard's weight gradients;
 *   4. the coordinator sums them in worker order (deterministic) and steps the optimiser once.
 * The top blocks are a per-image function (their BatchNorm is frozen, graph-tfjs.ts) and their
 * gradient is the sum over images, so this equals one-thread training up to float rounding.
 * Replicas never step an optimiser: each job starts by copying the master weights from shared
 * memory, so they cannot drift, and EMA swaps or early-stopping restores reach them too.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as tf from '@tensorflow/tfjs-core';
import { countMacs } from '../backbones/flops.js';
import type { GraphModule } from '../model/graph-tfjs.js';
import type { TrainingBackend } from './backend.js';
import type { ParallelJob, ParallelReply, ParallelWorkerData } from './parallel-worker.js';

/**
 * Below this many multiply-accumulates per image in the fine-tuned blocks, workers are not
 * started: a step that small is mostly messaging. Measured on 2 idle cores (--top-blocks 1, full
 * set, 1 -> 2 workers): ResNet50 (218 M MACs) 72.3 -> 43.1 s per epoch, MobileNetV2 0.35 (7 M)
 * 4.6 -> 3.3 s. On a machine busy with other work the small one can come out slower.
 */
export const PARALLEL_MIN_MACS = 5e6;

/**
 * The default number of training workers: every core this process may use when top blocks are
 * trained and heavy enough (PARALLEL_MIN_MACS per image), else 1 (this thread).
 */
export function defaultTrainingWorkers(top: GraphModule | undefined): number {
  if (!top) return 1;
  return countMacs(top.exportWeights()).macs >= PARALLEL_MIN_MACS ? Math.max(1, availableParallelism()) : 1;
}

/**
 * Starts a worker on parallel-worker: the compiled .js in dist/; under tsx (tests, scripts) the .ts
 * source, through a bootstrap that registers tsx's loader in the worker (it does not carry over).
 */
function startWorker(workerData: ParallelWorkerData): Worker {
  const ts = new URL('./parallel-worker.ts', import.meta.url);
  if (import.meta.url.endsWith('.ts') && existsSync(fileURLToPath(ts))) {
    const boot = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(ts.href)}); })`;
    return new Worker(boot, { eval: true, workerData });
  }
  return new Worker(new URL('./parallel-worker.js', import.meta.url), { workerData });
}

export interface ParallelTopOptions {
  /** The master top blocks (their graph and current weights seed the replicas). */
  top: GraphModule;
  /** Shape of one trunk-feature row, [H, W, C]. */
  featureShape: number[];
  /** Width of the top's (pooled) output. */
  width: number;
  workers: number;
  /** Most rows of one step (the batch size): sizes the shared gradient buffers. */
  maxRows: number;
  backend: TrainingBackend;
}

interface Replica {
  worker: Worker;
  flag: Int32Array;
  dPooled: Float32Array;
  /** Replies that arrived before anyone waited for them. */
  inbox: ParallelReply[];
  waiting: { resolve: (r: ParallelReply) => void; reject: (e: Error) => void }[];
  failed?: Error;
}

export class ParallelTop {
  private closed = false;

  private constructor(
    private readonly replicas: Replica[],
    private readonly vars: tf.Variable[],
    private readonly weights: Float32Array,
    private readonly width: number,
    private readonly maxRows: number,
  ) {}

  get workers(): number {
    return this.replicas.length;
  }

  static async create(opts: ParallelTopOptions): Promise<ParallelTop> {
    if (!(opts.workers >= 2)) throw new RangeError(`ParallelTop needs at least 2 workers, got ${opts.workers}`);
    const vars = opts.top.trainableVariables;
    const total = vars.reduce((s, v) => s + v.size, 0);
    const weights = new Float32Array(new SharedArrayBuffer(total * 4));
    const perWorker = Math.ceil(opts.maxRows / opts.workers);
    const graph = opts.top.exportWeights();
    const replicas: Replica[] = [];
    for (let k = 0; k < opts.workers; k++) {
      const flag = new SharedArrayBuffer(4);
      const dPooled = new SharedArrayBuffer(perWorker * opts.width * 4);
      const workerData: ParallelWorkerData = { graph, featureShape: opts.featureShape, backend: opts.backend, weights: weights.buffer as SharedArrayBuffer, flag, dPooled };
      const worker = startWorker(workerData);
      const r: Replica = { worker, flag: new Int32Array(flag), dPooled: new Float32Array(dPooled), inbox: [], waiting: [] };
      worker.on('message', (msg: ParallelReply) => {
        const w = r.waiting.shift();
        if (w) w.resolve(msg);
        else r.inbox.push(msg);
      });
      const fail = (err: Error): void => {
        r.failed ??= err;
        for (const w of r.waiting.splice(0)) w.reject(err);
      };
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`training worker ${k} exited (code ${code})`)));
      replicas.push(r);
    }
    const pool = new ParallelTop(replicas, vars, weights, opts.width, opts.maxRows);
    try {
      const sizes = vars.map((v) => v.size);
      for (const r of replicas) {
        const ready = await pool.next(r, 'ready');
        if (ready.sizes.join() !== sizes.join()) throw new Error('training worker: its top blocks differ from the model');
      }
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  private next<K extends ParallelReply['kind']>(r: Replica, kind: K): Promise<Extract<ParallelReply, { kind: K }>> {
    const got = r.inbox.length > 0 ? Promise.resolve(r.inbox.shift()!) : r.failed ? Promise.reject(r.failed) : new Promise<ParallelReply>((resolve, reject) => r.waiting.push({ resolve, reject }));
    return got.then((msg) => {
      if (msg.kind === 'error') throw new Error(`training worker: ${msg.message}`);
      if (msg.kind !== kind) throw new Error(`training worker: expected '${kind}', got '${msg.kind}'`);
      return msg as Extract<ParallelReply, { kind: K }>;
    });
  }

  /** Contiguous shards [from, to) of n rows, one per worker that gets any. */
  private shards(n: number): [number, number][] {
    const w = this.replicas.length;
    const out: [number, number][] = [];
    for (let k = 0; k < w; k++) {
      const a = Math.floor((k * n) / w);
      const b = Math.floor(((k + 1) * n) / w);
      if (b > a) out.push([a, b]);
    }
    return out;
  }

  /** Copies the master top weights where the replicas read them at the start of each job. */
  private publishWeights(): void {
    let off = 0;
    for (const v of this.vars) {
      this.weights.set(v.dataSync() as Float32Array, off);
      off += v.size;
    }
  }

  private post(k: number, rows: readonly Float32Array[], kind: ParallelJob['kind']): void {
    const per = rows[0]!.length;
    const x = new Float32Array(rows.length * per);
    rows.forEach((row, i) => x.set(row, i * per));
    this.replicas[k]!.worker.postMessage({ kind, x, n: rows.length } satisfies ParallelJob, [x.buffer]);
  }

  /** The top's output for feature rows (inference), [rows.length * width] row-major. */
  async forward(rows: readonly Float32Array[]): Promise<Float32Array> {
    if (this.closed) throw new Error('ParallelTop is closed');
    this.publishWeights();
    const shards = this.shards(rows.length);
    shards.forEach(([a, b], k) => this.post(k, rows.slice(a, b), 'forward'));
    return this.gatherPooled(shards, rows.length);
  }

  /** The shards' pooled outputs joined in batch order, [n * width]. */
  private async gatherPooled(shards: readonly [number, number][], n: number): Promise<Float32Array> {
    const parts = await Promise.all(shards.map((_, k) => this.next(this.replicas[k]!, 'pooled')));
    const out = new Float32Array(n * this.width);
    shards.forEach(([a], k) => out.set(parts[k]!.pooled, a * this.width));
    return out;
  }

  /**
   * One training step of the top blocks. `head` gets the pooled output of the whole batch
   * ([n * width], batch order), runs the head forward and backward, and returns d loss / d pooled
   * (same layout). Resolves to the top variables' gradients (summed over the shards), in the
   * order of `top.trainableVariables`.
   */
  async step(rows: readonly Float32Array[], head: (pooled: Float32Array, n: number) => Float32Array): Promise<Float32Array[]> {
    if (this.closed) throw new Error('ParallelTop is closed');
    const n = rows.length;
    if (n > this.maxRows) throw new RangeError(`ParallelTop.step: ${n} rows, sized for ${this.maxRows}`);
    this.publishWeights();
    const shards = this.shards(n);
    shards.forEach(([a, b], k) => {
      Atomics.store(this.replicas[k]!.flag, 0, 0);
      this.post(k, rows.slice(a, b), 'step');
    });
    try {
      const d = head(await this.gatherPooled(shards, n), n);
      shards.forEach(([a, b], k) => {
        const r = this.replicas[k]!;
        r.dPooled.set(d.subarray(a * this.width, b * this.width));
        Atomics.store(r.flag, 0, 1);
        Atomics.notify(r.flag, 0);
      });
      const grads = await Promise.all(shards.map((_, k) => this.next(this.replicas[k]!, 'grads')));
      const sum = grads[0]!.grads;
      for (let k = 1; k < grads.length; k++) {
        grads[k]!.grads.forEach((g, i) => {
          const s = sum[i]!;
          for (let j = 0; j < g.length; j++) s[j] = s[j]! + g[j]!;
        });
      }
      return sum;
    } catch (err) {
      await this.close(); // replicas may be blocked mid-step: the pool is not reusable
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.replicas) {
      Atomics.store(r.flag, 0, 2); // wakes a replica blocked mid-step, which then gives up
      Atomics.notify(r.flag, 0);
    }
    await Promise.all(this.replicas.map((r) => r.worker.terminate()));
  }
}
