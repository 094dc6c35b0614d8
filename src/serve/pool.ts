/**
 * Where inference runs. onnxruntime-node's `session.run` computes on the calling thread (its
 * promise only defers the start with setImmediate), so running it on the main thread would stall
 * the event loop for the whole inference: health checks, metrics and the immediate 503 of a full
 * queue would all wait behind it. The service therefore runs each ONNX session in a worker thread
 * (`workers` >= 1); `workers: 0` runs in-process (one session on the main thread) for debugging.
 *
 * The worker's code is a small CommonJS string evaluated by `new Worker(..., { eval: true })`: it
 * needs only onnxruntime-node, and works the same from src/ under tsx and from dist/.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

export interface InferenceEngine {
  /** `n` images (NCHW float32, `size` x `size`) -> n x classes probabilities, row-major. */
  run(input: Float32Array, n: number): Promise<Float32Array>;
  close(): Promise<void>;
  /** Sessions that can run at once. */
  readonly parallelism: number;
  readonly description: string;
}

export interface EngineOptions {
  /** The classifier's ONNX: a file path, or its bytes. */
  model: { path: string } | { bytes: Uint8Array };
  /** Input side in pixels. */
  size: number;
  classes: number;
  /** Worker threads, each with its own session; 0 = one session on the main thread. */
  workers: number;
  /** ONNX Runtime intra-op threads per session (0 = ORT's default: all cores). */
  threads: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const model = workerData.path !== undefined ? workerData.path : new Uint8Array(workerData.bytes);
ort.InferenceSession.create(model, workerData.sessionOptions).then(
  (session) => {
    if (!session.inputNames.includes('input') || !session.outputNames.includes('output')) {
      parentPort.postMessage({ type: 'failed', message: "model needs an input named 'input' and an output named 'output'" });
      return;
    }
    parentPort.on('message', async (m) => {
      // Ends the thread between jobs: terminate() during session.run aborts the whole process.
      if (m.type === 'exit') process.exit(m.code);
      try {
        const out = await session.run({ input: new ort.Tensor('float32', m.input, [m.n, 3, m.size, m.size]) });
        const probs = Float32Array.from(out.output.data);
        parentPort.postMessage({ type: 'result', id: m.id, probs }, [probs.buffer]);
      } catch (err) {
        parentPort.postMessage({ type: 'result', id: m.id, error: String((err && err.message) || err) });
      }
    });
    parentPort.postMessage({ type: 'ready' });
  },
  (err) => parentPort.postMessage({ type: 'failed', message: String((err && err.message) || err) }),
);
`;

/**
 * ONNX Runtime's intra-op threads spin while waiting for work by default; in a server they share
 * the cores with image decoding (sharp) and HTTP, and spinning steals from both. Measured on the
 * 2-core machine with ResNet50 next to two decode loops: 6.8-7.8 inferences/s spinning, 9.6-12.2 not.
 */
function sessionOptions(threads: number): ort.InferenceSession.SessionOptions {
  return { intraOpNumThreads: threads, graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } };
}

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; probs?: Float32Array; error?: string };

interface Job {
  id: number;
  input: Float32Array;
  n: number;
  resolve(p: Float32Array): void;
  reject(err: Error): void;
  /** Resolves once the job is answered or failed. */
  settled: Promise<void>;
}

interface Slot {
  worker: Worker;
  job?: Job;
  /** Resolves when the thread has ended. */
  exited: Promise<void>;
}

/** A buffer the worker may take over (transfer) without touching the caller's other data. */
function transferable(x: Float32Array): Float32Array {
  return x.byteOffset === 0 && x.byteLength === x.buffer.byteLength && x.buffer instanceof ArrayBuffer ? x : x.slice();
}

class WorkerPool implements InferenceEngine {
  private readonly slots: Slot[] = [];
  private readonly pending: Job[] = [];
  private nextId = 1;
  private closing = false;
  readonly parallelism: number;
  readonly description: string;

  private constructor(private readonly opts: EngineOptions) {
    this.parallelism = opts.workers;
    this.description = `${opts.workers} worker thread${opts.workers === 1 ? '' : 's'} x ${opts.threads || 'default'} ONNX Runtime thread${opts.threads === 1 ? '' : 's'}`;
  }

  static async start(opts: EngineOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(opts);
    try {
      await Promise.all(Array.from({ length: opts.workers }, () => pool.spawn()));
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** Starts one worker and resolves when its session is ready. */
  private spawn(): Promise<void> {
    const workerData: Record<string, unknown> = { ortPath: createRequire(import.meta.url).resolve('onnxruntime-node'), sessionOptions: sessionOptions(this.opts.threads) };
    if ('path' in this.opts.model) workerData['path'] = this.opts.model.path;
    else workerData['bytes'] = this.opts.model.bytes; // copied into the worker by structured clone
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    const slot: Slot = { worker, exited: new Promise<void>((resolve) => worker.once('exit', () => resolve())) };
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: WorkerMessage) => {
        if (m.type === 'ready') {
          ready = true;
          resolve();
          if (this.closing) worker.postMessage({ type: 'exit', code: 0 }); // closed while it loaded
          else {
            this.slots.push(slot);
            this.dispatch();
          }
        } else if (m.type === 'failed') {
          reject(new Error(`inference worker could not load the model: ${m.message}`));
          void worker.terminate();
        } else {
          const job = slot.job;
          if (!job || job.id !== m.id) return;
          slot.job = undefined;
          if (m.error !== undefined) job.reject(new Error(`inference failed: ${m.error}`));
          else if (!m.probs || m.probs.length !== job.n * this.opts.classes) {
            job.reject(new Error(`model output has ${m.probs?.length ?? 0} values, expected ${job.n} x ${this.opts.classes}`));
          } else job.resolve(m.probs);
          this.dispatch();
        }
      });
      let dead = false;
      const onDeath = (why: string): void => {
        if (dead) return; // 'error' is followed by 'exit'
        dead = true;
        if (!ready) {
          reject(new Error(`inference worker stopped while loading the model: ${why}`));
          return;
        }
        // A crashed worker fails its own job only; a fresh one takes its place.
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
        slot.job?.reject(new Error(`inference worker stopped: ${why}`));
        slot.job = undefined;
        if (!this.closing) this.spawn().catch(() => undefined);
      };
      worker.on('error', (err) => onDeath(err.message));
      worker.on('exit', (code) => onDeath(`exit code ${code}`));
    });
  }

  run(input: Float32Array, n: number): Promise<Float32Array> {
    if (this.closing) return Promise.reject(new Error('inference engine is closed'));
    let settle!: Pick<Job, 'resolve' | 'reject'>;
    const answer = new Promise<Float32Array>((resolve, reject) => (settle = { resolve, reject }));
    const settled = answer.then(
      () => undefined,
      () => undefined,
    );
    this.pending.push({ id: this.nextId++, input, n, ...settle, settled });
    this.dispatch();
    return answer;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.pending.length === 0) return;
      if (slot.job) continue;
      const job = this.pending.shift()!;
      slot.job = job;
      const input = transferable(job.input);
      slot.worker.postMessage({ type: 'run', id: job.id, input, n: job.n, size: this.opts.size }, [input.buffer as ArrayBuffer]);
    }
  }

  /**
   * Rejects queued jobs, lets running ones finish, then asks each worker to exit. Never
   * terminate() a computing worker: onnxruntime-node aborts the whole process when its thread is
   * torn down inside session.run.
   */
  async close(): Promise<void> {
    this.closing = true;
    for (const j of this.pending.splice(0)) j.reject(new Error('inference engine is closed'));
    await Promise.all(
      this.slots.splice(0).map(async (s) => {
        await s.job?.settled;
        s.worker.postMessage({ type: 'exit', code: 0 });
        await s.exited;
      }),
    );
  }
}

/** One session on the main thread (blocks the event loop while it runs). */
class InProcessEngine implements InferenceEngine {
  readonly parallelism = 1;
  readonly description: string;
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly opts: EngineOptions,
  ) {
    this.description = `in-process, ${opts.threads || 'default'} ONNX Runtime thread${opts.threads === 1 ? '' : 's'}`;
  }

  static async start(opts: EngineOptions): Promise<InProcessEngine> {
    const so = sessionOptions(opts.threads);
    const session = 'path' in opts.model ? await ort.InferenceSession.create(opts.model.path, so) : await ort.InferenceSession.create(opts.model.bytes, so);
    return new InProcessEngine(session, opts);
  }

  async run(input: Float32Array, n: number): Promise<Float32Array> {
    const s = this.opts.size;
    const out = await this.session.run({ input: new ort.Tensor('float32', input, [n, 3, s, s]) });
    const probs = out['output']!.data as Float32Array;
    if (probs.length !== n * this.opts.classes) throw new Error(`model output has ${probs.length} values, expected ${n} x ${this.opts.classes}`);
    return probs;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

export async function startEngine(opts: EngineOptions): Promise<InferenceEngine> {
  if (!Number.isInteger(opts.workers) || opts.workers < 0) throw new RangeError(`workers must be an integer >= 0, got ${opts.workers}`);
  return opts.workers === 0 ? InProcessEngine.start(opts) : WorkerPool.start(opts);
}
