/**
 * The Redis side of the queue: the `--redis` URL (checked before anything connects), connections
 * with clear errors instead of ioredis's endless reconnect loop, and the names of the keys the
 * queue keeps next to BullMQ's own.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { OptionError } from '../../options/schema.js';

/** BullMQ's key prefix for phoneside queues: keys are `phoneside:<queue name>:...`. */
export const BULL_PREFIX = 'phoneside';

/** The URL as shown in messages: the password replaced by `***`. */
export function redactUrl(url: URL): string {
  if (url.password === '') return url.href.replace(/\/$/, '');
  const shown = new URL(url.href);
  shown.password = '***';
  return shown.href.replace(/\/$/, '');
}

/** A `redis://[user:password@]host[:port][/db]` or `rediss://` URL; an OptionError (`--redis must be ...`) otherwise. */
export function parseRedisUrl(text: string): URL {
  const bad = (): never => {
    throw new OptionError('redis', 'a redis:// or rediss:// URL (redis://[user:password@]host[:port][/db])', text);
  };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return bad();
  }
  if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') bad();
  if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d{1,2}$/.test(url.pathname)) bad();
  return url;
}

/** Redis could not be reached, or went away, for a command that does not wait for it. */
export class RedisUnreachableError extends Error {
  override readonly name = 'RedisUnreachableError';
}

function baseOptions(url: URL): RedisOptions {
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 6379 : Number(url.port),
    db,
    ...(url.username !== '' ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password !== '' ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    lazyConnect: true,
    connectionName: 'phoneside',
  };
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err)) || 'connection failed';

/**
 * A connection for a command that runs and ends (queue add, results, status): one attempt, a
 * 5 s connect timeout, no reconnecting; RedisUnreachableError when it cannot connect.
 */
export async function connectOnce(url: URL): Promise<Redis> {
  let last: unknown;
  const redis = new Redis({ ...baseOptions(url), connectTimeout: 5000, maxRetriesPerRequest: 1, retryStrategy: () => null, enableOfflineQueue: false });
  redis.on('error', (err: unknown) => void (last = err)); // reported by connect() or the failing command
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    throw new RedisUnreachableError(`cannot reach Redis at ${redactUrl(url)}: ${message(last ?? err)}`);
  }
  return redis;
}

/**
 * A connection for a worker, which outlives Redis restarts: it reconnects with backoff (0.5 s
 * growing to 10 s) for ever, saying so on `log` once per outage and again when it is back.
 * BullMQ's blocking commands need maxRetriesPerRequest null.
 */
export function connectForWorker(url: URL, log: (line: string) => void): Redis {
  let down = false;
  const redis = new Redis({
    ...baseOptions(url),
    connectTimeout: 10_000,
    maxRetriesPerRequest: null,
    lazyConnect: false,
    retryStrategy: (times: number) => Math.min(500 * 2 ** Math.min(times - 1, 5), 10_000),
  });
  redis.on('error', (err: unknown) => {
    if (down) return;
    down = true;
    log(`cannot reach Redis at ${redactUrl(url)}: ${message(err)}; retrying with backoff`);
  });
  redis.on('ready', () => {
    if (down) log(`Redis at ${redactUrl(url)} is reachable again`);
    down = false;
  });
  return redis;
}

/** The keys the queue keeps beside BullMQ's (same prefix and queue name, so one DEL pattern clears both). */
export interface QueueKeys {
  /** Hash: content sha256 -> CatalogRecord JSON. */
  results: string;
  /** Hash: path -> why it could not be read (after the job's last attempt). */
  unreadable: string;
  /** Counter of images done in one 10-second window (key + window number), for throughput. */
  doneWindow: (window: number) => string;
}

export const WINDOW_MS = 10_000;

export function queueKeys(queueName: string): QueueKeys {
  const base = `${BULL_PREFIX}:${queueName}:phoneside`;
  return { results: `${base}:results`, unreadable: `${base}:unreadable`, doneWindow: (w) => `${base}:done:${w}` };
}

/** A queue name BullMQ accepts and that stays inside its own keys. */
export function checkQueueName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/.test(name)) throw new OptionError('queueName', 'letters, digits, _ . - (at most 100, no colon)', name);
  return name;
}
