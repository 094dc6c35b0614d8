/**
 * `phoneside worker --redis URL`: one consumer of the queue (run one per machine, or several).
 * Loads the model once, then takes jobs until SIGTERM/SIGINT (finishing the job in hand first)
 * or, with --until-empty, until nothing is left to do.
 */
import { Queue } from 'bullmq';
import { BULL_PREFIX, redactUrl, connectForWorker } from '../catalog/queue/redis.js';
import { pendingJobs, queueStatus } from '../catalog/queue/status.js';
import { startWorker } from '../catalog/queue/worker.js';
import { Classifier } from '../infer/classifier.js';
import { WORKER } from '../options/queue.js';
import { applyModelWeights, type CliIO } from './options.js';
import { runVerb } from './parse.js';
import { queueTarget } from './queue.js';
import { definedOnly } from '../util/defined.js';

const POLL_MS = 1000;

/** Resolves on the first SIGTERM or SIGINT (a second one exits at once); `off` removes the handlers. */
function stopSignal(onStop: (signal: string) => void): { stopped: Promise<void>; off: () => void } {
  let first = true;
  let resolve!: () => void;
  const stopped = new Promise<void>((r) => (resolve = r));
  const handler = (signal: NodeJS.Signals): void => {
    if (!first) process.exit(130);
    first = false;
    onStop(signal);
    resolve();
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return { stopped, off: () => void (process.off('SIGTERM', handler), process.off('SIGINT', handler)) };
}

export function cmdWorker(args: string[], io: CliIO): Promise<number> {
  return runVerb(WORKER, args, io, async ({ values }) => {
    const target = queueTarget(values);
    const say = (line: string): void => void io.stdout.write(`worker ${process.pid}: ${line}\n`);
    const warn = (line: string): void => void io.stderr.write(`phoneside worker ${process.pid}: ${line}\n`);
    await applyModelWeights(values.weights, [values.model]);
    const clf = await Classifier.load(values.model, definedOnly(values, ['threads', 'precision', 'calibration', 'gateData', 'force']));
    const redis = connectForWorker(target.url, warn);
    try {
      const model = await clf.identity();
      const decision = definedOnly(values, ['thresholds', 'minConfidence']);
      const running = startWorker(redis, target.name, clf, model, {
        ...definedOnly(values, ['concurrency', 'lockMs']),
        decision,
        ...(values.quiet ? {} : { log: say }),
      });
      say(`ready: queue ${target.name} at ${redactUrl(target.url)}, model ${model.id} ${model.version}, concurrency ${values.concurrency ?? 1}`);
      const signal = stopSignal((s) => say(`${s}: finishing the current job, then exiting`));
      const queue = values.untilEmpty ? new Queue(target.name, { connection: redis, prefix: BULL_PREFIX }) : undefined;
      try {
        if (queue === undefined) await signal.stopped;
        else {
          // Done when nothing waits, is delayed for a retry or is held by any worker (a dead
          // worker's job stays active until its lock expires, then comes back to be done).
          let stop = false;
          void signal.stopped.then(() => (stop = true));
          while (!stop && pendingJobs(await queueStatus(queue, redis, 0)) > 0) await new Promise((r) => setTimeout(r, POLL_MS));
          if (!stop) say('queue empty: exiting');
        }
        await running.close();
      } finally {
        signal.off();
        await queue?.close();
      }
    } finally {
      // quit() would wait for a Redis that is down (the worker's connection retries for ever).
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
      await clf.dispose();
    }
    return 0;
  });
}
