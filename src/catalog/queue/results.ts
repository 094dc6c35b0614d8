/**
 * `queue results`: streams the records the workers stored (HSCAN, a few hundred at a time, never
 * the whole hash at once) into the catalog's JSON-lines file (output.ts: the same file `phoneside
 * catalog` writes), appending only contents the file does not hold yet, so it can be run again
 * while workers are still going, or after an interruption.
 */
import type { Redis } from 'ioredis';
import { parseRecordLine, type CatalogRecord } from '../record.js';
import { queueKeys } from './redis.js';
import { openCatalogOutput } from '../output.js';

/** Records stored for `queueName`, in batches of about `count`; a value that is not a record is counted in `bad`. */
export async function* scanResults(redis: Redis, queueName: string, bad: { count: number }, count = 500): AsyncGenerator<CatalogRecord[]> {
  const key = queueKeys(queueName).results;
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(key, cursor, 'COUNT', count);
    cursor = next;
    const records: CatalogRecord[] = [];
    for (let i = 1; i < flat.length; i += 2) {
      const r = parseRecordLine(flat[i]!);
      if (r === undefined || r.sha256 !== flat[i - 1]) bad.count++;
      else records.push(r);
    }
    if (records.length > 0) yield records;
  } while (cursor !== '0');
}

export interface CollectSummary {
  out: string;
  /** Records stored in Redis (seen by the scan). */
  stored: number;
  /** Appended to the file by this run. */
  appended: number;
  /** Already in the file before. */
  alreadyInFile: number;
  /** Of the records appended, those that are error records. */
  errors: number;
  /** A torn last line of an earlier interrupted run, dropped. */
  tornLines: number;
  /** Values in Redis that are not records (ignored). */
  invalid: number;
  /** Paths workers could not read (no record: there are no bytes to key it by), path -> reason. */
  unreadable: Record<string, string>;
}

export async function collectResults(redis: Redis, queueName: string, out: string): Promise<CollectSummary> {
  const file = await openCatalogOutput(out);
  const bad = { count: 0 };
  const s: CollectSummary = { out, stored: 0, appended: 0, alreadyInFile: 0, errors: 0, tornLines: file.tornLines, invalid: 0, unreadable: {} };
  try {
    for await (const batch of scanResults(redis, queueName, bad)) {
      s.stored += batch.length;
      // HSCAN may return a field twice while the hash grows: `has` covers that too.
      const fresh = batch.filter((r) => !file.has(r.sha256));
      s.alreadyInFile += batch.length - fresh.length;
      await file.append(fresh);
      s.appended += fresh.length;
      s.errors += fresh.filter((r) => r.error !== undefined).length;
    }
  } finally {
    await file.close();
  }
  s.invalid = bad.count;
  s.unreadable = await redis.hgetall(queueKeys(queueName).unreadable);
  return s;
}
