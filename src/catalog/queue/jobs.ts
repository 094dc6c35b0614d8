/**
 * What goes on the queue: one job per small batch of images, each image by a path every worker
 * can see, or with its bytes in the job when it is small (`inlineMaxKb`). The job id is derived
 * from the batch (paths, sizes, modification times), so enqueueing the same files twice adds
 * nothing: BullMQ keeps one job per id.
 */
import { stat } from 'node:fs/promises';
import type { Queue } from 'bullmq';
import { readImageFile } from '../../data/image.js';
import { sha256Hex } from '../../util/hash.js';
import { displayPath, type FsPath } from '../../util/list-dir.js';

export const JOB_NAME = 'classify';

export interface QueuedImage {
  /** The path as shown in records (displayPath). */
  path: string;
  /** The path's bytes, base64, when the name is not valid UTF-8 (then `path` has \xHH escapes). */
  rawPath?: string;
  size: number;
  mtimeMs: number;
  /** The file's bytes, base64, when it is at most inlineMaxKb: workers need not see the file. */
  inline?: string;
}

export interface BatchJob {
  /** Payload format version. */
  v: 1;
  images: QueuedImage[];
}

export interface EnqueueOptions {
  /** Images per job (default 16). */
  batchSize?: number;
  /** Files up to this many KiB travel inside the job (default 256; 0: never). */
  inlineMaxKb?: number;
  /** Tries per job before it goes to the failed set (default 3). */
  attempts?: number;
  /** First retry delay; doubles on each further try (default 1000 ms). */
  backoffMs?: number;
}

export interface EnqueueSummary {
  images: number;
  jobs: number;
  /** Of `images`, how many travelled inside their job. */
  inlined: number;
  /** Jobs (and their images) already on the queue from an earlier add. */
  alreadyQueued: { jobs: number; images: number };
  /** Files that could not even be stat'ed: not enqueued. */
  problems: { path: string; error: string }[];
}

/** A batch's id: the same files unchanged give the same id (never all digits: BullMQ refuses those). */
export function batchJobId(images: readonly Pick<QueuedImage, 'path' | 'rawPath' | 'size' | 'mtimeMs'>[]): string {
  return `b${sha256Hex(JSON.stringify(images.map((i) => [i.rawPath ?? i.path, i.size, i.mtimeMs]))).slice(0, 40)}`;
}

async function describe(file: FsPath, inlineMaxBytes: number): Promise<QueuedImage> {
  const s = await stat(file);
  const path = displayPath(file);
  const image: QueuedImage = { path, size: s.size, mtimeMs: Math.trunc(s.mtimeMs), ...(typeof file === 'string' ? {} : { rawPath: file.toString('base64') }) };
  if (s.isFile() && s.size <= inlineMaxBytes) {
    // Unreadable now: left to the worker, which retries and then reports it.
    const bytes = await readImageFile(file).catch(() => undefined);
    if (bytes !== undefined) image.inline = Buffer.from(bytes).toString('base64');
  }
  return image;
}

/** Enqueues `files` in batches; a batch already on the queue (same id) is counted, not added again. */
export async function enqueueFiles(queue: Queue, files: readonly FsPath[], opts: EnqueueOptions = {}): Promise<EnqueueSummary> {
  const batchSize = opts.batchSize ?? 16;
  const inlineMaxBytes = (opts.inlineMaxKb ?? 256) * 1024;
  const summary: EnqueueSummary = { images: 0, jobs: 0, inlined: 0, alreadyQueued: { jobs: 0, images: 0 }, problems: [] };
  const described: QueuedImage[] = [];
  for (const f of files) {
    try {
      described.push(await describe(f, inlineMaxBytes));
    } catch (err) {
      summary.problems.push({ path: displayPath(f), error: err instanceof Error ? err.message : String(err) });
    }
  }
  for (let i = 0; i < described.length; i += batchSize) {
    const images = described.slice(i, i + batchSize);
    const jobId = batchJobId(images);
    if ((await queue.getJob(jobId)) !== undefined) {
      summary.alreadyQueued.jobs++;
      summary.alreadyQueued.images += images.length;
      continue;
    }
    const data: BatchJob = { v: 1, images };
    await queue.add(JOB_NAME, data, {
      jobId,
      attempts: opts.attempts ?? 3,
      backoff: { type: 'exponential', delay: opts.backoffMs ?? 1000 },
      // Kept for a week so a later add of the same files is recognised; results live apart, by sha256.
      removeOnComplete: { age: 7 * 24 * 3600 },
      removeOnFail: { age: 30 * 24 * 3600 },
    });
    summary.jobs++;
    summary.images += images.length;
    summary.inlined += images.filter((im) => im.inline !== undefined).length;
  }
  return summary;
}

/** A job's data as a BatchJob, or a reason it is not one (a job put there by something else). */
export function asBatchJob(data: unknown): BatchJob | string {
  const d = data as Partial<BatchJob> | null;
  if (typeof d !== 'object' || d === null || d.v !== 1 || !Array.isArray(d.images)) return 'not a phoneside batch job (expected {v: 1, images: [...]})';
  for (const im of d.images as unknown[]) {
    const i = im as Partial<QueuedImage> | null;
    if (typeof i !== 'object' || i === null || typeof i.path !== 'string' || (i.inline !== undefined && typeof i.inline !== 'string') || (i.rawPath !== undefined && typeof i.rawPath !== 'string'))
      return 'not a phoneside batch job (an image without a path)';
  }
  return d as BatchJob;
}
