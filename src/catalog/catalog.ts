/**
 * `catalog(sources, options)`: classifies every image below `sources` into a resumable JSON-lines
 * file (output.ts), optionally placing each in DIR/<label>/ (place.ts).
 *
 * One record per distinct content: a file is read and hashed first, and skipped when its sha256
 * is already in the output (done by an earlier run: `alreadyDone`) or was met earlier in this run
 * (`duplicates`: another name of the same bytes, neither classified nor placed again).
 * Undecodable images get an error record (final: a rerun does not retry them, the same bytes
 * would fail the same way); files that cannot be read get none, so the next run retries them.
 *
 * Pipeline: reading, hashing and decoding the next batch overlap the inference of the current one
 * (as in predict); records are appended every `syncEvery` images or 2 s. Order per batch, so that
 * a kill at any moment loses nothing and duplicates nothing: place (copy/link, fsync) -> append
 * records (write, fsync) -> for --move, remove the sources. A kill before the append redoes the
 * batch (placement finds its identical files and adds none); a kill after it leaves --move
 * sources whose record exists, which the rerun finds placed and removes then.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { readImageFile } from '../data/image.js';
import { Classifier, LOAD_KEYS, type DecodedBatch } from '../infer/classifier.js';
import type { ModelIdentity } from '../infer/identity.js';
import { errorReason } from '../infer/predict.js';
import { UNCERTAIN } from '../infer/prediction.js';
import { CATALOG, type CatalogInput, type CatalogSettings } from '../options/catalog.js';
import { OptionConflictError, resolveOptions } from '../options/schema.js';
import { sha256Hex } from '../util/hash.js';
import { fileId } from '../util/list-dir.js';
import { DigestSet } from './digest-set.js';
import { compileGlob, GlobError, type GlobMatcher } from './glob.js';
import { CatalogFileError, openCatalogOutput, type CatalogOutput } from './output.js';
import { Placer, removeSource } from './place.js';
import { recordsOfBatch, type CatalogItem, type CatalogRecord } from './record.js';
import { walkSources, type WalkedFile } from './walk.js';
import { definedOnly } from '../util/defined.js';

/** Progress of a run; `total` is the number of image files found (counted before the run). */
export interface CatalogProgress {
  total: number;
  /** Files handled so far (classified, skipped or unreadable). */
  files: number;
  classified: number;
}

export interface CatalogHooks {
  /** Called as files are handled; setting it makes catalog count the files first (a walk). */
  onProgress?: (p: CatalogProgress) => void;
  /** A file that could not be read (no record; a rerun retries it), or a skipped entry. */
  onProblem?: (path: string, reason: string) => void;
  /** Things worth telling once (e.g. copies made instead of hard links). */
  onNote?: (message: string) => void;
  /** An already loaded model to use instead of loading `model` (left open). */
  classifier?: Classifier;
}

export type CatalogOptions = CatalogInput & CatalogHooks;

export interface CatalogSummary {
  /** The output file. */
  out: string;
  model: ModelIdentity;
  /** Image files found in the sources. */
  files: number;
  /** Newly recorded images: classified, or recorded with their error. */
  classified: number;
  /** Of those classified without error: how many got each label (the classes and uncertain). */
  labels: Record<string, number>;
  /** New records with an error (undecodable images). */
  errors: number;
  /** Files that could not be read: no record, retried by the next run. */
  unreadable: number;
  /** Files whose content an earlier run had recorded. */
  alreadyDone: number;
  /** Files with the same content as another file met earlier in this run. */
  duplicates: number;
  /** With sortInto: images placed into it, and (--move) sources removed. */
  placed: number;
  moved: number;
  /** A torn last line cut off the output when it was opened (a killed run): 1 or 0. */
  tornLines: number;
  /** Records in the output at the end. */
  records: number;
  seconds: number;
  /** classified / seconds. */
  imagesPerSecond: number;
}

/** A source that does not exist, or an output or sorting folder that cannot be used. */
export class CatalogInputError extends Error {
  override readonly name = 'CatalogInputError';
}

const FLUSH_MS = 2000;
const code = (err: unknown): string | undefined => (err as { code?: string }).code;

interface ReadItem extends CatalogItem {
  sha256: string;
  walked: WalkedFile;
}

interface Counters {
  files: number;
  alreadyDone: number;
  duplicates: number;
  unreadable: number;
  moved: number;
}

function globs(flag: string, patterns: readonly string[] | undefined): GlobMatcher[] {
  return (patterns ?? []).map((p) => {
    try {
      return compileGlob(p);
    } catch (err) {
      if (err instanceof GlobError) throw new CatalogInputError(`${flag}: ${err.message}`);
      throw err;
    }
  });
}

async function checkInputs(sources: readonly string[], out: string): Promise<void> {
  if (sources.length === 0) throw new CatalogInputError('no SRC given: name the files or folders to catalog');
  for (const s of sources) {
    if ((await stat(s).catch(() => undefined)) === undefined) throw new CatalogInputError(`${s}: no such file or folder`);
  }
  const folder = await stat(dirname(out)).catch(() => undefined);
  if (folder === undefined || !folder.isDirectory()) throw new CatalogInputError(`--out ${out}: the folder ${dirname(out)} does not exist`);
}

/** Loads the model of `opts` as predict does. */
async function loadClassifier(opts: CatalogSettings): Promise<Classifier> {
  return Classifier.load(opts.model, definedOnly(opts, LOAD_KEYS));
}

/** Classifies the images of `sources` into `options.out`; see the module comment. */
export async function catalog(sources: readonly string[], options: CatalogOptions): Promise<CatalogSummary> {
  const opts = resolveOptions(CATALOG.options, options);
  if (opts.out === undefined) throw new OptionConflictError(['out'], ([o]) => `catalog needs ${o}: the JSON-lines file to write or resume`);
  if (options.placement !== undefined && opts.sortInto === undefined) throw new OptionConflictError(['placement', 'sortInto'], ([p, s]) => `${p} needs ${s}`);
  const include = globs('--include', opts.include);
  const exclude = globs('--exclude', opts.exclude);
  await checkInputs(sources, opts.out);
  const skipDirs = new Set<string>();
  if (opts.sortInto !== undefined) {
    await mkdir(opts.sortInto, { recursive: true }).catch((err: unknown) => {
      throw new CatalogInputError(`--sort-into ${opts.sortInto}: cannot create it (${code(err) ?? String(err)})`);
    });
    skipDirs.add(await fileId(opts.sortInto)); // never walk into what we place
  }
  const walkOpts = { include, exclude, skipDirs };
  const output = await openCatalogOutput(opts.out); // first: a locked or foreign file fails before any work
  let clf: Classifier | undefined;
  try {
    let total = 0;
    if (options.onProgress !== undefined) {
      for await (const _ of walkSources(sources, walkOpts)) total++;
      options.onProgress({ total, files: 0, classified: 0 });
    }
    clf = options.classifier ?? (await loadClassifier(opts));
    const model = await clf.identity();
    const other = output.models.find((m) => m.id !== model.id || m.version !== model.version);
    if (other !== undefined) {
      throw new CatalogFileError(
        `${opts.out} holds results of model ${other.id} ${other.version}, this run uses ${model.id} ${model.version}: one catalog file holds one model's answers; write to another --out`,
      );
    }
    const placer = opts.sortInto !== undefined ? new Placer(opts.sortInto, opts.placement, options.onNote) : undefined;
    return await run(sources, { ...opts, out: opts.out }, options, clf, model, output, placer, { ...walkOpts, total });
  } finally {
    await output.close();
    if (options.classifier === undefined) await clf?.dispose();
  }
}

async function run(
  sources: readonly string[],
  opts: CatalogSettings & { out: string },
  hooks: CatalogHooks,
  clf: Classifier,
  model: ModelIdentity,
  output: CatalogOutput,
  placer: Placer | undefined,
  walk: { include: GlobMatcher[]; exclude: GlobMatcher[]; skipDirs: Set<string>; total: number },
): Promise<CatalogSummary> {
  const t0 = performance.now();
  const c: Counters = { files: 0, alreadyDone: 0, duplicates: 0, unreadable: 0, moved: 0 };
  const labels: Record<string, number> = Object.fromEntries([...clf.classes, UNCERTAIN].map((k) => [k, 0]));
  let classified = 0;
  let errors = 0;
  let placed = 0;
  const labelDirs = [...clf.classes, UNCERTAIN];
  /** Contents this run took to classify: a later file with one is a duplicate, even before its record is appended. */
  const thisRun = new DigestSet();
  const problem = (path: string, reason: string): void => hooks.onProblem?.(path, reason);
  const files = walkSources(sources, { include: walk.include, exclude: walk.exclude, skipDirs: walk.skipDirs, onSkip: problem });
  const progress = (): void => hooks.onProgress?.({ total: Math.max(walk.total, c.files), files: c.files, classified });

  /** The next batch of files to classify (up to batchSize new contents), read and hashed; undefined at the end. */
  const readBatch = async (): Promise<ReadItem[] | undefined> => {
    const items: ReadItem[] = [];
    let exhausted = false;
    while (items.length < opts.batchSize && !exhausted) {
      const chunk: WalkedFile[] = [];
      while (chunk.length < opts.batchSize - items.length) {
        const n = await files.next();
        if (n.done === true) {
          exhausted = true;
          break;
        }
        chunk.push(n.value);
      }
      const read = await Promise.all(chunk.map(async (w) => readImageFile(w.fsPath).then((bytes) => ({ w, bytes }), (err: unknown) => ({ w, err }))));
      for (const r of read) {
        c.files++;
        if ('err' in r) {
          c.unreadable++;
          problem(r.w.path, r.err instanceof Error ? errorReason(r.err) : String(r.err));
          continue;
        }
        const sha256 = sha256Hex(r.bytes);
        if (thisRun.has(sha256)) c.duplicates++;
        else if (output.has(sha256)) {
          c.alreadyDone++;
          if (placer?.placement === 'move') await finishMove(r.w, r.bytes.length, sha256);
        } else {
          thisRun.add(sha256);
          items.push({ path: r.w.path, bytes: r.bytes, sha256, walked: r.w });
        }
      }
      progress();
    }
    return items.length > 0 ? items : undefined; // short of a full batch only at the end
  };

  /** --move after a kill between a batch's append and its removals: the record is there, the source too. */
  const finishMove = async (w: WalkedFile, size: number, sha256: string): Promise<void> => {
    const name = w.path.split('/').pop()!;
    const at = await placer!.findPlaced({ source: w.fsPath, name, sha256, size }, labelDirs);
    if (at !== undefined && resolve(at) !== resolve(w.path)) {
      await removeSource(w.fsPath);
      c.moved++;
    }
  };

  const decoded = async (): Promise<{ items: ReadItem[]; batch: DecodedBatch } | undefined> => {
    const items = await readBatch();
    return items && { items, batch: await clf.decode(items.map((it) => it.bytes)) };
  };

  let pending: { record: CatalogRecord; source?: WalkedFile }[] = [];
  let lastFlush = performance.now();
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    await placer?.flush(); // placements on disk before the records that say they are done
    await output.append(pending.map((p) => p.record));
    if (placer?.placement === 'move') {
      for (const p of pending) {
        if (p.source === undefined) continue;
        await removeSource(p.source.fsPath);
        c.moved++;
      }
    }
    pending = [];
    lastFlush = performance.now();
  };

  let next = decoded();
  for (;;) {
    const cur = await next;
    if (cur === undefined) break;
    next = decoded(); // reads and decodes the next batch while this one runs
    // A failure below leaves `next` running: let it finish (or fail) quietly.
    const records = recordsOfBatch(clf, model, cur.items, cur.batch, await clf.run(cur.batch).catch((err: unknown) => settle(next, err)), opts);
    for (const [j, r] of records.entries()) {
      classified++;
      if (r.error !== undefined || r.label === null) errors++;
      else labels[r.label] = (labels[r.label] ?? 0) + 1;
      const it = cur.items[j]!;
      let source: WalkedFile | undefined;
      if (placer !== undefined && r.label !== null) {
        const name = it.walked.path.split('/').pop()!;
        const p = await placer.place({ source: it.walked.fsPath, name, label: r.label, sha256: it.sha256, size: it.bytes.length }).catch((err: unknown) => settle(next, err));
        if (p.fresh) placed++;
        source = it.walked;
      }
      pending.push(source !== undefined ? { record: r, source } : { record: r });
    }
    if (pending.length >= opts.syncEvery || performance.now() - lastFlush >= FLUSH_MS) await flush().catch((err: unknown) => settle(next, err));
    progress();
  }
  await flush();
  const seconds = (performance.now() - t0) / 1000;
  return {
    out: opts.out,
    model,
    files: c.files,
    classified,
    labels,
    errors,
    unreadable: c.unreadable,
    alreadyDone: c.alreadyDone,
    duplicates: c.duplicates,
    placed,
    moved: c.moved,
    tornLines: output.tornLines,
    records: output.done,
    seconds,
    imagesPerSecond: seconds > 0 ? classified / seconds : 0,
  };
}

/** Rethrows `err` once the prefetch `next` has settled, so nothing runs on after a failure. */
async function settle(next: Promise<unknown>, err: unknown): Promise<never> {
  await next.catch(() => undefined);
  throw err;
}
