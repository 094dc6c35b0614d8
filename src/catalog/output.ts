/**
 * The catalog's JSON-lines output, resumable: opening it indexes the sha256 of every record
 * already there (streamed, 8 bytes per record: see digest-set.ts), so a rerun skips what is done;
 * records are appended a batch at a time, one write then fsync, so a kill loses at most the batch
 * being written, and the torn line it may leave is cut off on the next open and redone.
 *
 * What a file may hold: whole records, one per line, each sha256 at most once (append() drops a
 * record whose content is already there). A bad line anywhere but at the end is an error naming
 * its line, never dropped silently; a bad last line is cut off only when it looks like the start
 * of a record (or is NUL bytes, what a crash can leave), so pointing --out at some other file
 * fails instead of eating its last line. One writer at a time (lock.ts).
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ModelIdentity } from '../infer/identity.js';
import { DigestSet } from './digest-set.js';
import { lockFile, type FileLock } from './lock.js';
import { parseRecordLine, recordLine, type CatalogRecord } from './record.js';

export interface CatalogOutput {
  /** Records in the file (those there on open plus those appended). */
  readonly done: number;
  /** Whether a record of this content (sha256) is in the file. */
  has(sha256: string): boolean;
  /** Appends the records not already in the file (by sha256) as one write, then fsync. */
  append(records: readonly CatalogRecord[]): Promise<void>;
  /** Releases the file and its lock; appending after close is an error. */
  close(): Promise<void>;
  /** Lines cut off on open: 1 when the last line was torn (a run killed mid-write), else 0. */
  readonly tornLines: number;
  /** The models (id and version) of the records found on open, in order of first appearance. */
  readonly models: readonly ModelIdentity[];
  /** The file's path as opened. */
  readonly path: string;
}

/** The file exists but is not a catalog this code can resume (wrong content, a bad middle line). */
export class CatalogFileError extends Error {
  override readonly name = 'CatalogFileError';
}

const CHUNK = 1 << 20;
/** A record line is a few hundred bytes; anything much longer is not one. */
const MAX_LINE = 1 << 20;
const NL = 0x0a;
const RECORD_START = '{"path":';

/** Whether a bad last line is what an interrupted append leaves: a record's first bytes, or NULs. */
function looksTorn(line: string): boolean {
  return line.startsWith(RECORD_START) || RECORD_START.startsWith(line) || /^\0+$/.test(line);
}

interface Scan {
  /** Byte length of the whole, valid lines. */
  validBytes: number;
  records: number;
  /** Bytes after validBytes, when the last line is torn. */
  torn: boolean;
}

const modelKey = (m: ModelIdentity): string => `${m.id}\0${m.version}`;

/** Reads the file line by line (CHUNK bytes at a time), indexing each record's digest. */
async function scan(fh: FileHandle, shown: string, index: DigestSet, models: Map<string, ModelIdentity>): Promise<Scan> {
  const buf = Buffer.allocUnsafe(CHUNK);
  let carry: Buffer = Buffer.alloc(0);
  let pos = 0;
  let lineNo = 0;
  let validBytes = 0;
  let records = 0;
  /** A bad whole line seen: fine only if nothing follows it. */
  let bad: { lineNo: number; text: string } | undefined;
  const badLine = (n: number, why: string): CatalogFileError =>
    new CatalogFileError(`${shown}: line ${n} is not a catalog record (${why}); the file is not a catalog output, or it was edited: fix or remove that line, or write to another --out`);
  const take = (line: Buffer): void => {
    lineNo++;
    if (bad !== undefined) throw badLine(bad.lineNo, 'not the last line, so not a torn write');
    if (line.length > MAX_LINE) throw badLine(lineNo, `longer than ${MAX_LINE} bytes`);
    const text = line.toString('utf8');
    const r = parseRecordLine(text);
    if (r === undefined) {
      bad = { lineNo, text };
      return;
    }
    if (!index.add(r.sha256)) throw new CatalogFileError(`${shown}: line ${lineNo} repeats the sha256 ${r.sha256} of an earlier record; the file was edited or concatenated: remove the repeat`);
    if (!models.has(modelKey(r.model))) models.set(modelKey(r.model), { id: r.model.id, version: r.model.version });
    records++;
    validBytes += line.length + 1;
  };
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
    if (bytesRead === 0) break;
    pos += bytesRead;
    const data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
    let start = 0;
    for (let nl = data.indexOf(NL, start); nl >= 0; nl = data.indexOf(NL, start)) {
      take(data.subarray(start, nl));
      start = nl + 1;
    }
    // Keep the partial line (copied: `buf` is reused), unless it is already too long to be a record.
    carry = Buffer.from(data.subarray(start));
    if (carry.length > MAX_LINE) {
      if (bad !== undefined) throw badLine(bad.lineNo, 'not the last line, so not a torn write');
      throw badLine(lineNo + 1, `longer than ${MAX_LINE} bytes`);
    }
  }
  const tail = carry.length > 0 ? { lineNo: lineNo + 1, text: carry.toString('utf8') } : undefined;
  if (bad !== undefined && tail !== undefined) throw badLine(bad.lineNo, 'not the last line, so not a torn write');
  const last = bad ?? tail;
  if (last === undefined) return { validBytes, records, torn: false };
  if (!looksTorn(last.text)) {
    throw badLine(last.lineNo, last === tail ? 'no newline at its end and not the start of a record' : 'not a record');
  }
  return { validBytes, records, torn: true };
}

/**
 * Opens (creating it if needed) a catalog output for resuming: takes its lock, indexes its
 * records and cuts off a torn last line. Errors: CatalogFileError (not a catalog, a bad line in
 * the middle), CatalogLockedError (another run writes it), and the fs error of a missing folder.
 */
export async function openCatalogOutput(path: string): Promise<CatalogOutput> {
  const folder = await stat(dirname(path)).catch(() => undefined);
  if (folder === undefined || !folder.isDirectory()) throw new CatalogFileError(`${path}: the folder ${dirname(path)} does not exist`);
  const existing = await stat(path).catch(() => undefined);
  if (existing !== undefined && !existing.isFile()) throw new CatalogFileError(`${path}: not a regular file`);
  const lock = await lockFile(path);
  let fh: FileHandle | undefined;
  try {
    // 'a+': created if missing, read anywhere, every write appended at the end.
    fh = await open(path, 'a+');
    const index = new DigestSet();
    const models = new Map<string, ModelIdentity>();
    const s = await scan(fh, path, index, models);
    if (s.torn) {
      await fh.truncate(s.validBytes);
      await fh.sync();
    }
    return new JsonlOutput(path, fh, lock, index, s.records, s.torn ? 1 : 0, [...models.values()]);
  } catch (err) {
    await fh?.close();
    await lock.release();
    throw err;
  }
}

class JsonlOutput implements CatalogOutput {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly lock: FileLock,
    private readonly index: DigestSet,
    private count: number,
    readonly tornLines: number,
    readonly models: readonly ModelIdentity[],
  ) {}

  get done(): number {
    return this.count;
  }

  has(sha256: string): boolean {
    return this.index.has(sha256);
  }

  async append(records: readonly CatalogRecord[]): Promise<void> {
    if (this.closed) throw new Error(`${this.path}: catalog output is closed`);
    const fresh: CatalogRecord[] = [];
    const inBatch = new Set<string>();
    for (const r of records) {
      if (this.index.has(r.sha256) || inBatch.has(r.sha256)) continue;
      inBatch.add(r.sha256);
      fresh.push(r);
    }
    if (fresh.length === 0) return;
    // One write of whole lines: a kill leaves at most one torn line, at the end, cut off on open.
    await this.fh.appendFile(fresh.map(recordLine).join(''));
    await this.fh.sync();
    for (const r of fresh) this.index.add(r.sha256);
    this.count += fresh.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.fh.close();
    } finally {
      await this.lock.release();
    }
  }
}
