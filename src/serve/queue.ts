/**
 * Admission control for inference. A request is admitted (or refused at once, without waiting)
 * once its body has arrived, before its images are decoded; it then decodes, waits for one of
 * `concurrency` inference slots in arrival order, runs, and leaves. At most
 * `concurrency + capacity` requests are in the system, so under overload the excess is answered
 * 503 immediately instead of piling up in memory and latency. Decoding happens outside the slots
 * so the next request's decode overlaps the current inference.
 *
 * A request keeps its place while work of its own is in progress (a decode started with `hold`,
 * an inference started with `run`), even when it is released meanwhile (its client went away, it
 * timed out): the bound is on the work being done, not only on the requests still wanted.
 */

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(readonly retryAfterSeconds: number) {
    super('server busy: the inference queue is full');
  }
}

export class QueueClosedError extends Error {
  override readonly name = 'QueueClosedError';
  constructor() {
    super('server is shutting down');
  }
}

export interface QueueOptions {
  /** Inference runs at once (one per inference worker). */
  concurrency: number;
  /** Admitted requests that may be waiting (decoding or queued) beyond those running. */
  capacity: number;
}

interface Waiter {
  resolve(): void;
  reject(err: unknown): void;
}

/** One admitted request: runs its inference once, then must be released (idempotent). */
export interface Ticket {
  /**
   * Work of this request outside the slots (decoding): `work` is started now, and a release()
   * meanwhile takes effect once it has settled. Resolves or rejects as `work` does.
   */
  hold<T>(work: () => Promise<T>): Promise<T>;
  /** Waits for a slot (FIFO), runs `task`, frees the slot. Rejects if `signal` aborts while waiting. */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Leaves the system; if its work (held or running) is in progress, when that ends. Idempotent. */
  release(): void;
}

export class InferenceQueue {
  readonly concurrency: number;
  readonly capacity: number;
  private admittedCount = 0;
  private runningCount = 0;
  private readonly waiters: Waiter[] = [];
  private closed = false;
  private idle: (() => void)[] = [];
  /** Smoothed milliseconds per run, for Retry-After. */
  private avgRunMs = 0;
  /** Requests refused because the queue was full, since start. */
  rejected = 0;

  constructor(opts: QueueOptions) {
    if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) throw new RangeError(`concurrency must be an integer >= 1, got ${opts.concurrency}`);
    if (!Number.isInteger(opts.capacity) || opts.capacity < 0) throw new RangeError(`queue capacity must be an integer >= 0, got ${opts.capacity}`);
    this.concurrency = opts.concurrency;
    this.capacity = opts.capacity;
  }

  /** Admitted requests not running yet (decoding or waiting for a slot): the queue depth. */
  get depth(): number {
    return this.admittedCount - this.runningCount;
  }

  get running(): number {
    return this.runningCount;
  }

  get admitted(): number {
    return this.admittedCount;
  }

  /** Seconds a new request would likely wait now (at least 1). */
  retryAfterSeconds(): number {
    const perRun = this.avgRunMs > 0 ? this.avgRunMs : 100;
    return Math.min(60, Math.max(1, Math.ceil((this.admittedCount * perRun) / this.concurrency / 1000)));
  }

  /**
   * Throws what admit() would throw now (QueueFullError, counted in `rejected`, or
   * QueueClosedError), without admitting: lets a request be refused before its body is read.
   */
  check(): void {
    if (this.closed) throw new QueueClosedError();
    if (this.admittedCount >= this.concurrency + this.capacity) {
      this.rejected++;
      throw new QueueFullError(this.retryAfterSeconds());
    }
  }

  /** Admits a request or throws QueueFullError (never waits). */
  admit(): Ticket {
    this.check();
    this.admittedCount++;
    let released = false; // counted out of `admitted`
    let releaseWanted = false;
    let busy = 0; // held work and the running inference: the place is kept until they end
    let used = false;
    const release = (): void => {
      releaseWanted = true;
      if (released || busy > 0) return;
      released = true;
      this.admittedCount--;
      this.checkIdle();
    };
    const settle = (): void => {
      busy--;
      if (releaseWanted) release();
    };
    return {
      hold: async <T>(work: () => Promise<T>): Promise<T> => {
        if (releaseWanted) throw new Error('ticket already released');
        busy++;
        try {
          return await work();
        } finally {
          settle();
        }
      },
      run: async <T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
        if (releaseWanted || used) throw new Error('ticket already used or released');
        used = true;
        await this.acquire(signal);
        busy++;
        const t0 = performance.now();
        try {
          return await task();
        } finally {
          const ms = performance.now() - t0;
          this.avgRunMs = this.avgRunMs === 0 ? ms : 0.8 * this.avgRunMs + 0.2 * ms;
          this.runningCount--;
          settle();
          this.next();
        }
      },
      release,
    };
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.runningCount < this.concurrency && this.waiters.length === 0) {
      this.runningCount++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal!.reason);
      };
      const w: Waiter = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject,
      };
      this.waiters.push(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private next(): void {
    while (this.runningCount < this.concurrency && this.waiters.length > 0) {
      this.runningCount++;
      this.waiters.shift()!.resolve();
    }
  }

  private checkIdle(): void {
    if (this.admittedCount === 0) {
      const fns = this.idle;
      this.idle = [];
      for (const f of fns) f();
    }
  }

  /** Refuses new requests; resolves once every admitted request has been released. */
  async drain(): Promise<void> {
    this.closed = true;
    if (this.admittedCount === 0) return;
    await new Promise<void>((resolve) => this.idle.push(resolve));
  }
}
