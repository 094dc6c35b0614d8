/**
 * `phoneside queue add|results|status`: the producer and collector side of the many-machines
 * mode (BullMQ on Redis); `phoneside worker` (worker.ts) is the consumer. Each subcommand has its
 * own option table (src/options/queue.ts).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { enqueueFiles } from '../catalog/queue/jobs.js';
import { BULL_PREFIX, checkQueueName, connectOnce, parseRedisUrl } from '../catalog/queue/redis.js';
import { collectResults } from '../catalog/queue/results.js';
import { queueStatus, statusText } from '../catalog/queue/status.js';
import { expandInputs } from '../infer/inputs.js';
import { QUEUE_ADD, QUEUE_RESULTS, QUEUE_STATUS } from '../options/queue.js';
import { escapeControl } from '../util/list-dir.js';
import { CommandUsageError, type CliIO } from './options.js';
import { runVerb } from './parse.js';
import { definedOnly } from '../util/defined.js';

const SUBCOMMANDS = { add: QUEUE_ADD, results: QUEUE_RESULTS, status: QUEUE_STATUS } as const;

/** `phoneside queue --help` and `phoneside help queue`. */
export function queueHelp(): string {
  const lines = Object.values(SUBCOMMANDS).map((v) => `  phoneside ${v.name.padEnd(14)} ${v.summary}`);
  return (
    `phoneside queue add|results|status ... — many machines: a BullMQ queue on Redis\n\n${lines.join('\n')}\n` +
    `  phoneside worker         ${'classify queued images (run on any number of machines)'}\n\n` +
    `'phoneside queue SUBCOMMAND --help' lists its options. See docs/queue.md.\n`
  );
}

/** The Redis URL and queue name every subcommand needs, checked before connecting (usage errors: exit 2). */
export function queueTarget(values: { redis?: string; queueName?: string }): { url: URL; name: string } {
  if (values.redis === undefined) throw new CommandUsageError('--redis URL is required (e.g. --redis redis://127.0.0.1:6379)');
  return { url: parseRedisUrl(values.redis), name: checkQueueName(values.queueName ?? 'phoneside') };
}

/** Connects (one try: exit 1 with the reason when Redis is not there), runs `body`, and closes. */
async function withQueue<T>(target: { url: URL; name: string }, body: (queue: Queue, redis: Redis) => Promise<T>): Promise<T> {
  const redis = await connectOnce(target.url);
  const queue = new Queue(target.name, { connection: redis, prefix: BULL_PREFIX });
  try {
    return await body(queue, redis);
  } finally {
    await queue.close().catch(() => {});
    await redis.quit().catch(() => redis.disconnect());
  }
}

function cmdAdd(args: string[], io: CliIO): Promise<number> {
  return runVerb(QUEUE_ADD, args, io, async ({ values, positionals }) => {
    const target = queueTarget(values);
    const { files, problems } = await expandInputs(positionals);
    if (files.length === 0 && problems.length === 0) throw new CommandUsageError(`no image files found in ${escapeControl(positionals.join(' '))}`);
    const s = await withQueue(target, (queue) =>
      enqueueFiles(queue, files, definedOnly(values, ['batchSize', 'inlineMaxKb', 'attempts', 'backoffMs'])),
    );
    const allProblems = [...problems, ...s.problems];
    for (const p of allProblems) io.stderr.write(`phoneside: ${escapeControl(p.path)}: ${p.error} (not enqueued)\n`);
    if (values.json) io.stdout.write(JSON.stringify({ queue: target.name, ...s, problems: allProblems }) + '\n');
    else
      io.stdout.write(
        `enqueued ${s.images} image${s.images === 1 ? '' : 's'} in ${s.jobs} job${s.jobs === 1 ? '' : 's'} on queue ${target.name} (${s.inlined} inline)` +
          `; already queued: ${s.alreadyQueued.images} images in ${s.alreadyQueued.jobs} jobs${allProblems.length > 0 ? `; ${allProblems.length} not enqueued` : ''}\n`,
      );
    return allProblems.length > 0 ? 1 : 0;
  });
}

function cmdResults(args: string[], io: CliIO): Promise<number> {
  return runVerb(QUEUE_RESULTS, args, io, async ({ values }) => {
    const target = queueTarget(values);
    if (values.out === undefined) throw new CommandUsageError('--out FILE.jsonl is required');
    const out = values.out;
    const s = await withQueue(target, (_queue, redis) => collectResults(redis, target.name, out));
    for (const [path, reason] of Object.entries(s.unreadable)) io.stderr.write(`phoneside: ${escapeControl(path)}: could not be read by the workers: ${reason}\n`);
    if (values.json) io.stdout.write(JSON.stringify({ queue: target.name, ...s }) + '\n');
    else {
      io.stdout.write(
        `${s.out}: ${s.appended} record${s.appended === 1 ? '' : 's'} appended (${s.errors} of them errors), ${s.alreadyInFile} already there; ${s.stored} stored in Redis` +
          `${s.tornLines > 0 ? '; a torn last line from an interrupted run was cut off' : ''}${s.invalid > 0 ? `; ${s.invalid} stored values were not records (ignored)` : ''}\n`,
      );
    }
    return 0;
  });
}

function cmdStatus(args: string[], io: CliIO): Promise<number> {
  return runVerb(QUEUE_STATUS, args, io, async ({ values }) => {
    const target = queueTarget(values);
    const s = await withQueue(target, (queue, redis) => queueStatus(queue, redis));
    io.stdout.write(values.json ? JSON.stringify(s) + '\n' : statusText(s));
    return 0;
  });
}

export async function cmdQueue(args: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(queueHelp());
    return 0;
  }
  switch (sub) {
    case 'add':
      return cmdAdd(rest, io);
    case 'results':
      return cmdResults(rest, io);
    case 'status':
      return cmdStatus(rest, io);
    default:
      throw new CommandUsageError(`unknown queue subcommand '${sub}': phoneside queue add|results|status`);
  }
}
