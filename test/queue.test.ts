/**
 * The many-machines mode: `queue add` -> `worker` processes -> `queue results`, against a real
 * redis-server started for these tests (127.0.0.1, a free port, stopped at the end). Workers run as
 * separate processes; one is SIGKILLed while it holds a job, which another takes over once the
 * lock expires. Without redis-server installed the Redis tests skip, saying so.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { enqueueFiles } from '../src/catalog/queue/jobs.js';
import { BULL_PREFIX, connectForWorker, connectOnce, parseRedisUrl, queueKeys } from '../src/catalog/queue/redis.js';
import { queueStatus, type QueueStatus } from '../src/catalog/queue/status.js';
import { startWorker, type BatchResult } from '../src/catalog/queue/worker.js';
import { classifyItems } from '../src/catalog/record.js';
import { Classifier } from '../src/infer/classifier.js';
import { distinctPhotos, fillFolder, readRecords, sha256Of, tempDir } from './helpers/catalog-fixture.js';
import { runCli } from './helpers/cli.js';
import { useSharedMobilenet } from './helpers/infer-fixture.js';
import { MOBILENET, NO_DATA } from './helpers/paths.js';
import { freePort, NO_REDIS, startRedis, type TestRedis } from './helpers/redis.js';
import { SLOW } from './helpers/slow.js';

useSharedMobilenet();
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SKIP = NO_REDIS || NO_DATA || SLOW;

let server: TestRedis | undefined;
let redis: Redis | undefined;
let dir = '';
let src = '';
/** sha256 of every file in src (two names share one: a copy). */
let shaOf = new Map<string, string>();
let corruptSha = '';
const children: ChildProcess[] = [];

before(async () => {
  if (SKIP) return;
  server = await startRedis();
  redis = await connectOnce(parseRedisUrl(server.url));
  dir = await tempDir('queue');
  src = join(dir, 'src');
  const names = await fillFolder(src, distinctPhotos(90), 'symlink');
  // The same content under a second name: one record. A truncated JPEG: an error record.
  await copyFile(names[0]!, join(src, 'copy-of-first.jpg'));
  await writeFile(join(src, 'corrupt.jpg'), (await readFile(names[1]!)).subarray(0, 2000));
  shaOf = new Map([...names, join(src, 'copy-of-first.jpg'), join(src, 'corrupt.jpg')].map((p) => [p, sha256Of(p)]));
  corruptSha = shaOf.get(join(src, 'corrupt.jpg'))!;
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await redis?.quit();
  await server?.stop();
  if (dir !== '') await rm(dir, { recursive: true, force: true });
  await clfPromise?.then((c) => c.dispose());
});

let clfPromise: Promise<Classifier> | undefined;
const model = (): Promise<Classifier> => (clfPromise ??= Classifier.load('mobilenet_v2'));

interface WorkerProcess {
  child: ChildProcess;
  out: () => string;
  /** Resolves with the first match of `re` in the worker's stdout. */
  waitFor: (re: RegExp) => Promise<RegExpExecArray>;
  exited: Promise<number | null>;
}

function spawnWorker(queueName: string, extra: string[]): WorkerProcess {
  const env = { ...process.env, PHONESIDE_WEIGHTS_MOBILENET_V2_035: MOBILENET, PHONESIDE_CACHE_DIR: process.env['PHONESIDE_CACHE_DIR'] ?? '/tmp/phoneside-test-cache' };
  const args = ['--import', 'tsx', 'scripts/cli.ts', 'worker', '--redis', server!.url, '--queue-name', queueName, '--model', 'mobilenet_v2', '--threads', '1', ...extra];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  child.stdout!.on('data', (d) => {
    out += d.toString();
    for (const w of [...waiters]) {
      const m = w.re.exec(out);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  child.stderr!.on('data', (d) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return {
    child,
    out: () => out + err,
    exited,
    waitFor: (re) =>
      new Promise((resolve, reject) => {
        const m = re.exec(out);
        if (m) return resolve(m);
        waiters.push({ re, resolve });
        void exited.then((code) => reject(new Error(`worker exited (${code}) before printing ${re}:\n${out}${err}`)));
      }),
  };
}

async function statusOf(queueName: string): Promise<QueueStatus> {
  const queue = new Queue(queueName, { connection: redis!, prefix: BULL_PREFIX });
  try {
    return await queueStatus(queue, redis!);
  } finally {
    await queue.close();
  }
}

async function returnValues(queueName: string): Promise<Map<string, BatchResult>> {
  const queue = new Queue(queueName, { connection: redis!, prefix: BULL_PREFIX });
  try {
    return new Map((await queue.getCompleted(0, -1)).map((j) => [String(j.id), j.returnvalue as BatchResult]));
  } finally {
    await queue.close();
  }
}

const distinct = (): Set<string> => new Set(shaOf.values());

test('queue add -> 2 worker processes -> queue results: every content once, the same answers as in-process, nothing lost', { skip: SKIP }, async (t) => {
  const url = server!.url;
  const q = ['--redis', url, '--queue-name', 'main'];
  // Files up to 40 KiB travel inside the job, bigger ones are read at their path.
  const add = await runCli(['queue', 'add', src, ...q, '--batch-size', '4', '--inline-max-kb', '40', '--json']);
  assert.equal(add.code, 0, add.err);
  const s = JSON.parse(add.out) as { images: number; jobs: number; inlined: number };
  assert.equal(s.images, shaOf.size);
  assert.equal(s.jobs, Math.ceil(shaOf.size / 4));
  assert.ok(s.inlined > 0 && s.inlined < s.images, `some inline, some by path: ${s.inlined} of ${s.images}`);
  const again = await runCli(['queue', 'add', src, ...q, '--batch-size', '4', '--inline-max-kb', '40']);
  assert.equal(again.code, 0, again.err);
  assert.match(again.out, new RegExp(`^enqueued 0 images in 0 jobs .*already queued: ${shaOf.size} images in ${s.jobs} jobs`));
  assert.equal((await statusOf('main')).jobs.waiting, s.jobs, 'adding twice queues each batch once');

  const workers = [spawnWorker('main', ['--until-empty', '--lock-ms', '5000']), spawnWorker('main', ['--until-empty', '--lock-ms', '5000'])];
  const codes = await Promise.all(workers.map((w) => w.exited));
  assert.deepEqual(codes, [0, 0], workers.map((w) => w.out()).join('\n'));
  const jobsBy = workers.map((w) => (w.out().match(/ done: /g) ?? []).length);
  t.diagnostic(`jobs done per worker: ${jobsBy.join(', ')}`);
  assert.equal(jobsBy[0]! + jobsBy[1]!, s.jobs);

  const st = await statusOf('main');
  assert.deepEqual(st.jobs, { waiting: 0, active: 0, delayed: 0, completed: s.jobs, failed: 0 });
  assert.equal(st.results, distinct().size);
  assert.ok(st.imagesPerMinute.last1 >= shaOf.size, `throughput counted: ${st.imagesPerMinute.last1}`);
  const stored = [...(await returnValues('main')).values()].reduce((n, r) => n + r.stored, 0);
  assert.equal(stored, distinct().size, 'each content stored as new exactly once');

  const out = join(dir, 'main.jsonl');
  const res = await runCli(['queue', 'results', ...q, '--out', out, '--json']);
  assert.equal(res.code, 0, res.err);
  const records = readRecords(out);
  assert.deepEqual(records.map((r) => r.sha256).sort(), [...distinct()].sort(), 'every distinct content exactly once');
  assert.deepEqual(
    records.filter((r) => r.error !== undefined).map((r) => [r.sha256, r.error]),
    [[corruptSha, 'truncated or corrupt']],
  );
  // The same answers as the model gives in this process.
  const clf = await model();
  const byPath = [...shaOf.keys()].filter((p) => !p.endsWith('corrupt.jpg'));
  const mine = await classifyItems(clf, await clf.identity(), await Promise.all(byPath.map(async (p) => ({ path: p, bytes: await readFile(p) }))));
  const expected = new Map(mine.map((r) => [r.sha256, r]));
  for (const r of records.filter((x) => x.error === undefined)) {
    assert.equal(r.label, expected.get(r.sha256)!.label, r.path);
    assert.deepEqual(r.model, expected.get(r.sha256)!.model);
  }
  const rerun = await runCli(['queue', 'results', ...q, '--out', out, '--json']);
  assert.equal((JSON.parse(rerun.out) as { appended: number; alreadyInFile: number }).appended, 0, 'rerunnable: nothing appended twice');
  assert.equal(readRecords(out).length, distinct().size);
  const status = await runCli(['queue', 'status', ...q]);
  assert.match(status.out, new RegExp(`0 waiting, 0 active, 0 delayed \\(retry\\), ${s.jobs} completed, 0 failed`));
  assert.match(status.out, new RegExp(`results: ${distinct().size} images stored`));
});

test('a worker SIGKILLed mid-job: another takes the job over after the lock expires; nothing lost, nothing counted twice', { skip: SKIP }, async (t) => {
  const queueName = 'kill';
  const add = await runCli(['queue', 'add', src, '--redis', server!.url, '--queue-name', queueName, '--batch-size', '32', '--json']);
  assert.equal(add.code, 0, add.err);
  const jobs = (JSON.parse(add.out) as { jobs: number }).jobs;
  const lock = ['--lock-ms', '2000'];
  const victim = spawnWorker(queueName, lock);
  const [, jobId] = await victim.waitFor(/job (\S+) started/);
  victim.child.kill('SIGKILL');
  await victim.exited;
  const atKill = await statusOf(queueName);
  t.diagnostic(`at the kill: ${JSON.stringify(atKill.jobs)}, ${atKill.results} results`);
  assert.equal(atKill.jobs.active, 1, `the victim held job ${jobId} when killed:\n${victim.out()}`);
  assert.equal(atKill.jobs.completed, 0, `the victim finished no job:\n${victim.out()}`);

  const survivor = spawnWorker(queueName, [...lock, '--until-empty']);
  assert.equal(await survivor.exited, 0, survivor.out());
  const after = await statusOf(queueName);
  t.diagnostic(`after the takeover: ${JSON.stringify(after.jobs)}, ${after.results} results`);
  assert.deepEqual(after.jobs, { waiting: 0, active: 0, delayed: 0, completed: jobs, failed: 0 });
  assert.equal(after.results, distinct().size);
  const values = await returnValues(queueName);
  assert.equal(values.get(jobId!)?.worker.endsWith(`:${survivor.child.pid}`), true, `job ${jobId} done by the survivor: ${JSON.stringify(values.get(jobId!))}`);
  assert.equal([...values.values()].reduce((n, r) => n + r.stored, 0), distinct().size, 'nothing counted twice');
  assert.equal(await redis!.hlen(queueKeys(queueName).results), distinct().size);
});

test('a job none of whose files can be read fails at once with the reason; a partly unreadable one is retried, then stores the rest', { skip: SKIP }, async () => {
  const queueName = 'unreadable';
  const gone = join(dir, 'gone');
  const [a, b, c] = await fillFolder(gone, distinctPhotos(3, 200), 'copy');
  const queue = new Queue(queueName, { connection: redis!, prefix: BULL_PREFIX });
  // Job 1: only a (then removed). Job 2: b (then removed) and c.
  await enqueueFiles(queue, [a!], { inlineMaxKb: 0, backoffMs: 50 });
  await enqueueFiles(queue, [b!, c!], { inlineMaxKb: 0, backoffMs: 50 });
  await rm(a!);
  await rm(b!);
  const wredis = connectForWorker(parseRedisUrl(server!.url), () => {});
  const clf = await model();
  const worker = startWorker(wredis, queueName, clf, await clf.identity(), { lockMs: 5000 });
  try {
    let s: QueueStatus;
    const deadline = Date.now() + 20_000;
    do {
      await new Promise((r) => setTimeout(r, 100));
      s = await queueStatus(queue, redis!);
    } while (s.jobs.failed + s.jobs.completed < 2 && Date.now() < deadline);
    assert.equal(s.jobs.failed, 1);
    assert.equal(s.jobs.completed, 1);
    assert.equal(s.failures[0]!.attempts, 1, 'not retried: no file of it can be read');
    assert.match(s.failures[0]!.reason, /none of the 1 image of the job could be read: .*gone\/img-000\.jpg: file not found/);
    const [done] = await queue.getCompleted(0, 0);
    assert.equal(done!.attemptsMade, 3, 'retried (with backoff) until its last try');
    assert.deepEqual(done!.returnvalue, { ...(done!.returnvalue as BatchResult), images: 2, stored: 1, unreadable: 1 });
    assert.equal(await redis!.hget(queueKeys(queueName).unreadable, b!), 'file not found');
    assert.equal(await redis!.hlen(queueKeys(queueName).results), 1);
  } finally {
    await worker.close();
    await queue.close();
    await wredis.quit();
  }
});

test('queue CLI: a bad --redis URL or a missing --redis is a usage error (2); an unreachable Redis exits 1 with a clear message', async () => {
  const bad = await runCli(['queue', 'status', '--redis', 'http://127.0.0.1:6379']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^phoneside: --redis must be a redis:\/\/ or rediss:\/\/ URL .*got 'http:\/\/127\.0\.0\.1:6379'/);
  const none = await runCli(['queue', 'add', 'x.jpg']);
  assert.equal(none.code, 2);
  assert.match(none.err, /--redis URL is required/);
  const badName = await runCli(['queue', 'status', '--redis', 'redis://127.0.0.1', '--queue-name', 'a:b']);
  assert.equal(badName.code, 2);
  assert.match(badName.err, /--queue-name must be letters, digits/);
  const port = await freePort();
  const down = await runCli(['queue', 'status', '--redis', `redis://127.0.0.1:${port}`]);
  assert.equal(down.code, 1);
  assert.equal(down.err, `phoneside: cannot reach Redis at redis://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}\n`);
  const secret = await runCli(['queue', 'results', '--redis', `redis://me:hunter2@127.0.0.1:${port}`, '--out', '/tmp/never.jsonl']);
  assert.equal(secret.code, 1);
  assert.match(secret.err, new RegExp(`cannot reach Redis at redis://me:\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
  assert.doesNotMatch(secret.err, /hunter2/);
  const sub = await runCli(['queue', 'frobnicate']);
  assert.equal(sub.code, 2);
  assert.match(sub.err, /unknown queue subcommand 'frobnicate'/);
  const help = await runCli(['queue', '--help']);
  assert.equal(help.code, 0);
  for (const v of ['queue add', 'queue results', 'queue status', 'worker']) assert.ok(help.out.includes(`phoneside ${v} `), v);
  assert.equal((await runCli(['help', 'queue', 'add'])).out, (await runCli(['queue', 'add', '--help'])).out);
});
