/** The options of the many-machines verbs: `queue add|results|status` and `worker` (BullMQ on Redis). */
import { ENV_OPTIONS, JSON_OPTION, MODEL_OPTION, PRECISION_OPTIONS, THREADS_OPTION } from './common.js';
import { DECISION_OPTIONS } from './infer.js';
import { defineVerb, type OptionsInput } from './schema.js';

/** Where the queue is: every queue verb and the worker. */
const QUEUE_OPTIONS = {
  redis: { kind: 'string', placeholder: 'URL', help: 'the Redis server, redis://[user:password@]host[:port][/db] or rediss:// (required)' },
  queueName: { kind: 'string', placeholder: 'NAME', default: 'phoneside', help: "the queue's name (its Redis keys are phoneside:NAME:...); one per catalog" },
} as const;

export const QUEUE_ADD = defineVerb({
  name: 'queue add',
  usage: 'SRC... --redis URL [options]',
  summary: 'enqueue images for workers on any number of machines (one job per batch)',
  description:
    'Enqueues the images of SRC (files, folders searched recursively, glob patterns) on a BullMQ queue in Redis, one job per batch. Workers read each image at its path, so SRC must be where every worker sees it (a shared volume, same path), unless it is small enough to travel inside the job (--inline-max-kb). A job id is derived from its files (paths, sizes, modification times): adding the same files again adds nothing.',
  footer: 'Exit status: 0 when every SRC was enqueued, 1 when some could not be read or Redis could not be reached, 2 for usage errors.',
  positionals: { min: 1, max: Infinity, name: 'SRC' },
  options: {
    ...QUEUE_OPTIONS,
    batchSize: { kind: 'integer', min: 1, max: 1000, default: 16, help: 'images per job' },
    inlineMaxKb: { kind: 'integer', min: 0, max: 4096, default: 256, help: 'files up to this size travel inside the job, so workers need not see them (0: none)' },
    attempts: { kind: 'integer', min: 1, max: 100, default: 3, help: 'tries per job (a file not readable yet, Redis going away) before it goes to the failed set' },
    backoffMs: { kind: 'integer', min: 0, default: 1000, help: 'wait before the first retry; doubled for each further one' },
    ...JSON_OPTION,
  },
});

export const WORKER = defineVerb({
  name: 'worker',
  usage: '--redis URL [--model M] [--concurrency N] [options]',
  summary: 'classify queued images and store the results in Redis (run on any number of machines)',
  description:
    "Takes jobs from the queue, classifies their images with one loaded model and stores one record per image in Redis, keyed by the content's sha256 (a job done twice counts once). An image that cannot be decoded gets an error record; a job whose files cannot be read is retried with backoff, and fails for good when none of its files can be read. A worker killed mid-job loses nothing: its job goes to another worker once its lock expires (--lock-ms). SIGTERM or SIGINT: finishes the current job, then exits. Redis going away: reconnects with backoff.",
  positionals: { min: 0, max: 0, name: '' },
  options: {
    ...QUEUE_OPTIONS,
    ...MODEL_OPTION,
    ...THREADS_OPTION,
    ...PRECISION_OPTIONS,
    concurrency: { kind: 'integer', min: 1, max: 64, default: 1, help: 'jobs this process runs at once (one ONNX session already uses every core: more helps only when reading files is slow)' },
    lockMs: { kind: 'integer', min: 1000, default: 30000, help: "a job's lock, renewed while it runs: a killed worker's job is taken over this long after it died" },
    untilEmpty: { kind: 'boolean', default: false, help: 'exit when no job is waiting, delayed or active (batch runs); otherwise wait for jobs for ever' },
    ...DECISION_OPTIONS,
    quiet: { kind: 'boolean', short: 'q', cli: 'only', help: 'no line per job' },
    ...ENV_OPTIONS,
  },
});

export const QUEUE_RESULTS = defineVerb({
  name: 'queue results',
  usage: '--redis URL --out FILE.jsonl [options]',
  summary: 'collect the stored results into a JSON-lines file (rerunnable)',
  description:
    "Streams the records the workers stored into FILE.jsonl (the same format as phoneside catalog: one record per distinct image, keyed by sha256), appending only those the file does not hold yet: run it again while workers go on, or after an interruption. Paths no worker could read have no record (no bytes to key them by): they are listed on stderr.",
  positionals: { min: 0, max: 0, name: '' },
  options: {
    ...QUEUE_OPTIONS,
    out: { kind: 'string', short: 'o', placeholder: 'FILE', help: 'the JSON-lines file to append to (created if missing) (required)' },
    ...JSON_OPTION,
  },
});

export const QUEUE_STATUS = defineVerb({
  name: 'queue status',
  usage: '--redis URL [--json]',
  summary: 'jobs waiting/active/completed/failed, results stored, throughput',
  description: 'Shows the queue: jobs waiting, active, delayed for a retry, completed and failed, workers connected, images stored, images per minute (last minute, last 5 minutes) and the first failed jobs with why.',
  positionals: { min: 0, max: 0, name: '' },
  options: { ...QUEUE_OPTIONS, ...JSON_OPTION },
});

export type QueueAddInput = OptionsInput<typeof QUEUE_ADD.options>;
export type WorkerInput = OptionsInput<typeof WORKER.options>;
