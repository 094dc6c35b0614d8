/**
 * A queue worker: takes batch jobs, reads each image (from the job when it travelled inline, else
 * from the shared path), classifies them with one loaded model, and stores one record per image in
 * Redis keyed by the content's sha256. Storing is idempotent (HSET of the same key), so a job
 * delivered twice (a worker killed mid-job, its lock expired, the job taken over) counts once.
 *
 * Failures: an image that cannot be decoded is an answer (an error record), not a failure. A file
 * that cannot be read is retried with the job (a shared volume may lag); on the last try the rest
 * of the batch is stored and the unreadable paths are noted. A batch none of whose files can be
 * read fails at once (UnrecoverableError): retrying it would not help.
 */
import { hostname } from 'node:os';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Classifier } from '../../infer/classifier.js';
import type { ModelIdentity } from '../../infer/identity.js';
import { errorReason } from '../../infer/predict.js';
import { readImageFile } from '../../data/image.js';
import { classifyItems, recordLine, type CatalogItem, type ClassifyItemsOptions } from '../record.js';
import { asBatchJob, type BatchJob } from './jobs.js';
import { BULL_PREFIX, queueKeys, WINDOW_MS, type QueueKeys } from './redis.js';

/** What a finished job returns (kept by BullMQ with the job). */
export interface BatchResult {
  images: number;
  /** Records stored that Redis did not hold yet (a redelivered job stores 0 new). */
  stored: number;
  /** Images answered with an error record (could not be decoded). */
  errors: number;
  /** Paths that could not be read on the last try. */
  unreadable: number;
  worker: string;
  ms: number;
}

interface ReadOutcome {
  items: CatalogItem[];
  unreadable: { path: string; reason: string }[];
}

async function readBatch(job: BatchJob): Promise<ReadOutcome> {
  const out: ReadOutcome = { items: [], unreadable: [] };
  for (const im of job.images) {
    if (im.inline !== undefined) {
      out.items.push({ path: im.path, bytes: Buffer.from(im.inline, 'base64') });
      continue;
    }
    try {
      const bytes = await readImageFile(im.rawPath !== undefined ? Buffer.from(im.rawPath, 'base64') : im.path);
      out.items.push({ path: im.path, bytes });
    } catch (err) {
      out.unreadable.push({ path: im.path, reason: err instanceof Error ? errorReason(err) : String(err) });
    }
  }
  return out;
}

export interface ProcessContext {
  clf: Classifier;
  model: ModelIdentity;
  redis: Redis;
  keys: QueueKeys;
  worker: string;
  decision?: ClassifyItemsOptions;
}

/** One job: its records stored in Redis; throws to have BullMQ retry, UnrecoverableError to fail it for good. */
export async function processBatch(ctx: ProcessContext, data: unknown, attempt: { made: number; max: number }): Promise<BatchResult> {
  const t0 = performance.now();
  const job = asBatchJob(data);
  if (typeof job === 'string') throw new UnrecoverableError(job);
  const { items, unreadable } = await readBatch(job);
  const list = (): string => unreadable.map((u) => `${u.path}: ${u.reason}`).join('; ');
  if (items.length === 0 && job.images.length > 0) throw new UnrecoverableError(`none of the ${plural(job.images.length, 'image')} of the job could be read: ${list()}`);
  const lastTry = attempt.made + 1 >= attempt.max;
  if (unreadable.length > 0 && !lastTry) throw new Error(`${unreadable.length} of ${job.images.length} images could not be read (will retry): ${list()}`);
  const records = await classifyItems(ctx.clf, ctx.model, items, ctx.decision);
  const window = Math.floor(Date.now() / WINDOW_MS);
  const tx = ctx.redis.multi();
  for (const r of records) tx.hset(ctx.keys.results, r.sha256, recordLine(r).trimEnd());
  for (const u of unreadable) tx.hset(ctx.keys.unreadable, u.path, u.reason);
  // A path that was unreadable in an earlier run and is read now is no longer a problem.
  if (items.length > 0) tx.hdel(ctx.keys.unreadable, ...items.map((it) => it.path));
  tx.incrby(ctx.keys.doneWindow(window), records.length);
  tx.expire(ctx.keys.doneWindow(window), 3600);
  const replies = (await tx.exec()) ?? [];
  const failed = replies.find(([err]) => err !== null);
  if (failed) throw failed[0]!;
  const stored = replies.slice(0, records.length).reduce((n, [, added]) => n + (added === 1 ? 1 : 0), 0);
  return { images: job.images.length, stored, errors: records.filter((r) => r.error !== undefined).length, unreadable: unreadable.length, worker: ctx.worker, ms: Math.round(performance.now() - t0) };
}

const plural = (n: number | undefined, word: string): string => `${n ?? '?'} ${word}${n === 1 ? '' : 's'}`;

export interface WorkerOptions {
  /** Jobs this process runs at once (default 1: one ONNX session already uses every core). */
  concurrency?: number;
  /** How long a job's lock lasts without renewal: a killed worker's job is taken over after it (default 30000 ms). */
  lockMs?: number;
  /** Answer options for the records. */
  decision?: ClassifyItemsOptions;
  /** Progress lines (job started / done / failed). */
  log?: (line: string) => void;
}

/** The running worker and a way to stop it after its current jobs. */
export interface RunningWorker {
  worker: Worker;
  id: string;
  close(): Promise<void>;
}

/** Starts a BullMQ worker on queue `queueName` of `redis` (a connectForWorker connection). */
export function startWorker(redis: Redis, queueName: string, clf: Classifier, model: ModelIdentity, opts: WorkerOptions = {}): RunningWorker {
  const id = `${hostname()}:${process.pid}`;
  const log = opts.log ?? ((): void => {});
  const lockMs = opts.lockMs ?? 30_000;
  const ctx: ProcessContext = { clf, model, redis, keys: queueKeys(queueName), worker: id, ...(opts.decision ? { decision: opts.decision } : {}) };
  const worker = new Worker(
    queueName,
    async (job: Job) => {
      log(`job ${job.id} started (${plural((job.data as Partial<BatchJob>).images?.length, 'image')}, try ${job.attemptsMade + 1}/${job.opts.attempts ?? 1})`);
      return processBatch(ctx, job.data, { made: job.attemptsMade, max: job.opts.attempts ?? 1 });
    },
    {
      connection: redis,
      prefix: BULL_PREFIX,
      name: id,
      concurrency: opts.concurrency ?? 1,
      lockDuration: lockMs,
      // Check for stalled jobs (lock expired: worker gone) twice per lock period.
      stalledInterval: Math.max(500, Math.floor(lockMs / 2)),
      maxStalledCount: 2,
    },
  );
  worker.on('completed', (job: Job, r: BatchResult) =>
    log(`job ${job.id} done: ${r.images} images in ${(r.ms / 1000).toFixed(2)}s, ${r.stored} new, ${r.errors} undecodable, ${r.unreadable} unreadable`),
  );
  worker.on('failed', (job: Job | undefined, err: Error) => log(`job ${job?.id ?? '?'} failed: ${err.message}`));
  // BullMQ reports every failed poll while Redis is down: the same line once per 30 s is enough.
  const lastSaid = new Map<string, number>();
  worker.on('error', (err: Error) => {
    const now = Date.now();
    if (now - (lastSaid.get(err.message) ?? 0) < 30_000) return;
    lastSaid.set(err.message, now);
    log(`worker error: ${err.message}`);
  });
  // With Redis gone there is no job to finish (nothing could be stored): do not wait for it.
  return { worker, id, close: () => worker.close(redis.status !== 'ready') };
}
