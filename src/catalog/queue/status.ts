/** `queue status`: the queue's job counts, results stored, throughput and the first failures. */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { queueKeys, WINDOW_MS } from './redis.js';

export interface QueueStatus {
  queue: string;
  jobs: { waiting: number; active: number; delayed: number; completed: number; failed: number };
  /** Distinct images (by content) with a stored record. */
  results: number;
  /** Paths that could not be read on their job's last try. */
  unreadable: number;
  /** Workers connected now; null where Redis refuses CLIENT LIST (some managed services). */
  workers: number | null;
  /** Images done in the last minute and per minute over the last 5 minutes (all workers). */
  imagesPerMinute: { last1: number; last5: number };
  /** The first failed jobs, newest first, with why. */
  failures: { job: string; reason: string; attempts: number }[];
}

async function doneSince(redis: Redis, queueName: string, windows: number): Promise<number> {
  const keys = queueKeys(queueName);
  const now = Math.floor(Date.now() / WINDOW_MS);
  const counts = await redis.mget(Array.from({ length: windows }, (_, i) => keys.doneWindow(now - i)));
  return counts.reduce((n, c) => n + Number(c ?? 0), 0);
}

export async function queueStatus(queue: Queue, redis: Redis, maxFailures = 5): Promise<QueueStatus> {
  const keys = queueKeys(queue.name);
  const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
  const perMinute = 60_000 / WINDOW_MS;
  const [results, unreadable, workers, last1, last5, failed] = await Promise.all([
    redis.hlen(keys.results),
    redis.hlen(keys.unreadable),
    queue.getWorkersCount().catch(() => null),
    doneSince(redis, queue.name, perMinute),
    doneSince(redis, queue.name, 5 * perMinute),
    maxFailures > 0 ? queue.getFailed(0, maxFailures - 1) : [],
  ]);
  return {
    queue: queue.name,
    jobs: {
      waiting: (c['waiting'] ?? 0) + (c['prioritized'] ?? 0),
      active: c['active'] ?? 0,
      delayed: c['delayed'] ?? 0,
      completed: c['completed'] ?? 0,
      failed: c['failed'] ?? 0,
    },
    results,
    unreadable,
    workers,
    imagesPerMinute: { last1, last5: Math.round(last5 / 5) },
    failures: failed.map((j) => ({ job: String(j.id), reason: j.failedReason ?? 'unknown', attempts: j.attemptsMade })),
  };
}

/** Jobs not finished yet (waiting, delayed for a retry, or held by a worker). */
export const pendingJobs = (s: QueueStatus): number => s.jobs.waiting + s.jobs.active + s.jobs.delayed;

export function statusText(s: QueueStatus): string {
  const j = s.jobs;
  const lines = [
    `queue ${s.queue}: ${j.waiting} waiting, ${j.active} active, ${j.delayed} delayed (retry), ${j.completed} completed, ${j.failed} failed; ${s.workers === null ? 'workers unknown (CLIENT LIST refused)' : `${s.workers} worker${s.workers === 1 ? '' : 's'} connected`}`,
    `results: ${s.results} images stored${s.unreadable > 0 ? `; ${s.unreadable} paths unreadable` : ''}`,
    `throughput: ${s.imagesPerMinute.last1} images in the last minute, ${s.imagesPerMinute.last5}/min over the last 5 minutes`,
  ];
  if (s.failures.length > 0) lines.push('failed jobs:', ...s.failures.map((f) => `  ${f.job} (after ${f.attempts} tr${f.attempts === 1 ? 'y' : 'ies'}): ${f.reason}`));
  return lines.join('\n') + '\n';
}
