/**
 * Folder listing and walking shared by dataset scanning and `predict`'s path expansion, safe on
 * hostile trees: symbolic links are followed but every folder is entered once (by device and
 * inode, so link loops end), the walk is iterative (no deep recursion), entries that are not
 * regular files or folders are reported as such, and file names that are not valid UTF-8 keep
 * their bytes (a Buffer path) instead of turning into a name that does not exist.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';

/** A path as node:fs takes it: a string, or a Buffer when some part of it is not valid UTF-8. */
export type FsPath = string | Buffer;

export interface DirEntry {
  /** The name, for display: non-UTF-8 bytes written as \xHH. */
  name: string;
  /** The path, for display (the real path when it is valid UTF-8). */
  path: string;
  /** The path to give node:fs: `path` itself, or a Buffer when a part of it is not valid UTF-8. */
  fsPath: FsPath;
  /** What the entry is after following symbolic links: 'other' is a FIFO, socket or device. */
  kind: 'file' | 'dir' | 'other';
  /** For kind 'other': what it is ('FIFO', 'socket', 'device', 'special file'). */
  special?: string;
  isDir: boolean;
  /** Device and inode of what it points to ("dev:ino"): equal for two names of one file. */
  id: string;
}

/** What a file that is neither a regular file nor a folder is, in words. */
export function specialKind(s: { isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  if (s.isFIFO()) return 'FIFO';
  if (s.isSocket()) return 'socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'device';
  return 'special file';
}

/** Sort by UTF-16 code units: the same order on every OS and locale. */
export const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** `b` as a string when it is valid UTF-8, else undefined. */
export function utf8OrUndefined(b: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(b);
  } catch {
    return undefined;
  }
}

/** Length of the valid UTF-8 sequence at b[i], or 0 when there is none. */
function utf8SeqLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  const n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n <= 1 || i + n > b.length) return n === 1 ? 1 : 0;
  return utf8OrUndefined(b.subarray(i, i + n)) === undefined ? 0 : n;
}

/** Bytes as text: valid UTF-8 decoded, every other byte written as \xHH. */
export function escapeBytes(b: Uint8Array): string {
  const whole = utf8OrUndefined(b);
  if (whole !== undefined) return whole;
  let out = '';
  for (let i = 0; i < b.length; ) {
    const n = utf8SeqLength(b, i);
    if (n === 0) {
      out += `\\x${b[i]!.toString(16).padStart(2, '0')}`;
      i++;
    } else {
      out += strictUtf8.decode(b.subarray(i, i + n));
      i += n;
    }
  }
  return out;
}

/** A path for display: strings as they are, Buffer paths decoded with bad bytes as \xHH. */
export function displayPath(p: FsPath): string {
  return typeof p === 'string' ? p : escapeBytes(p);
}

// C0, DEL, C1, line/paragraph separators and the bidi controls that can reorder a line.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `s` with control characters escaped (\n, \t, \r, else \xHH or \u{HHHH}), so that one name stays
 * on one line of a table or a log and cannot move the cursor or reorder the text around it.
 */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

const SEP = Buffer.from(sep);

/** `parent` + separator + `name`: a string when both are text, else a Buffer. */
export function childPath(parent: FsPath, name: string | Buffer): FsPath {
  if (typeof parent === 'string' && typeof name === 'string') return join(parent, name);
  const p = typeof parent === 'string' ? Buffer.from(parent) : parent;
  const n = typeof name === 'string' ? Buffer.from(name) : name;
  const endsWithSep = p.length > 0 && p[p.length - 1] === SEP[0];
  return Buffer.concat(endsWithSep || p.length === 0 ? [p, n] : [p, SEP, n]);
}

/** Device and inode of what `path` points to (after links), as "dev:ino". Throws like stat. */
export async function fileId(path: FsPath): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `${s.dev}:${s.ino}`;
}

/** The DirEntry of a name whose (link-following, bigint) stat is `s`. */
export function statEntry(name: string, path: string, fsPath: FsPath, s: BigIntStats): DirEntry {
  const kind: DirEntry['kind'] = s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
  const e: DirEntry = { name, path, fsPath, kind, isDir: kind === 'dir', id: `${s.dev}:${s.ino}` };
  if (kind === 'other') e.special = specialKind(s);
  return e;
}

export interface ListOptions {
  /** How `dir` is shown (default: displayPath(dir)). */
  display?: string;
  /** Entries left out, with why: a broken symbolic link, a link loop, an entry that cannot be read. */
  onSkip?: (path: string, reason: string) => void;
}

/**
 * Entries of `dir`, sorted by name; symbolic links are followed (`kind`, `id` are the target's),
 * and one that leads nowhere is reported to `onSkip` and left out. Throws if `dir` cannot be read.
 */
export async function listDir(dir: FsPath, opts: ListOptions = {}): Promise<DirEntry[]> {
  const shown = opts.display ?? displayPath(dir);
  const names = await readdir(dir, { encoding: 'buffer' });
  const entries = await Promise.all(
    names.map(async (raw): Promise<DirEntry | undefined> => {
      const text = utf8OrUndefined(raw);
      const name = text ?? escapeBytes(raw);
      const fsPath = childPath(dir, text ?? raw);
      const path = typeof fsPath === 'string' && typeof dir === 'string' && opts.display === undefined ? fsPath : join(shown, name);
      let s;
      try {
        s = await stat(fsPath, { bigint: true });
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'ELOOP') opts.onSkip?.(path, 'symbolic link loop');
        else if (code === 'EACCES' || code === 'EPERM') opts.onSkip?.(path, 'permission denied');
        else if (await lstat(fsPath).then((l) => l.isSymbolicLink(), () => false)) opts.onSkip?.(path, 'broken symbolic link');
        // else: removed while we looked; nothing to report.
        return undefined;
      }
      return statEntry(name, path, fsPath, s);
    }),
  );
  return entries.filter((e): e is DirEntry => e !== undefined).sort((a, b) => byCodePoint(a.name, b.name));
}

export interface WalkOptions extends ListOptions {
  /** Leave out names starting with '.' (and do not enter such folders). Default true. */
  skipHidden?: boolean;
  /** Folder ids ("dev:ino") already walked: they are not entered again (shared across walks to dedupe). */
  seenDirs?: Set<string>;
}

export interface WalkEntriesOptions extends WalkOptions {
  /** Whether to enter a folder (`rel`: its path below `root`, '/'-separated); default every one. */
  enter?: (dir: DirEntry, rel: string) => boolean;
}

/**
 * Every entry that is not a folder anywhere below `root`, lazily, with its path below `root`:
 * depth first, each folder's entries in name order (the order a recursive walk gives). Links are
 * followed, but a folder is entered only once (by device and inode): a second way into it, e.g. a
 * link to a parent, is reported to `onSkip` ('folder already scanned ...') and not followed, so
 * loops end. Iterative, so a deep tree cannot overflow the stack; only the listings of the
 * folders on the current path are held. Throws if `root` itself cannot be read; a sub-folder
 * that cannot be read is reported to `onSkip`.
 */
export async function* walkEntries(root: FsPath, opts: WalkEntriesOptions = {}): AsyncGenerator<{ entry: DirEntry; rel: string }> {
  const skipHidden = opts.skipHidden ?? true;
  const seen = opts.seenDirs ?? new Set<string>();
  const rootId = await fileId(root);
  if (seen.has(rootId)) return;
  seen.add(rootId);
  const stack: { entries: DirEntry[]; i: number; rel: string }[] = [{ entries: await listDir(root, opts), i: 0, rel: '' }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const e = top.entries[top.i++];
    if (e === undefined) {
      stack.pop();
      continue;
    }
    if (skipHidden && e.name.startsWith('.')) continue;
    const rel = top.rel === '' ? e.name : `${top.rel}/${e.name}`;
    if (e.kind !== 'dir') {
      yield { entry: e, rel };
      continue;
    }
    if (opts.enter !== undefined && !opts.enter(e, rel)) continue;
    if (seen.has(e.id)) {
      opts.onSkip?.(e.path, 'folder already scanned (a symbolic link loop, or a second link to it)');
      continue;
    }
    seen.add(e.id);
    try {
      stack.push({ entries: await listDir(e.fsPath, { ...opts, display: e.path }), i: 0, rel });
    } catch (err) {
      const code = (err as { code?: string }).code;
      opts.onSkip?.(e.path, code === 'EACCES' || code === 'EPERM' ? 'permission denied' : `unreadable folder (${code ?? String(err)})`);
    }
  }
}

/** walkEntries' entries as one array (for a tree small enough to list whole). */
export async function walkTree(root: FsPath, opts: WalkOptions = {}): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  for await (const { entry } of walkEntries(root, opts)) out.push(entry);
  return out;
}

/**
 * `entries` without second names of one file (same device and inode: hard links, or links to it);
 * the first is kept, and each one dropped is reported to `onDuplicate` with the kept one's path.
 */
export function dedupeFiles<T extends { id: string; path: string }>(entries: readonly T[], onDuplicate?: (dropped: T, kept: T) => void, seen = new Map<string, T>()): T[] {
  const out: T[] = [];
  for (const e of entries) {
    const first = seen.get(e.id);
    if (first) onDuplicate?.(e, first);
    else {
      seen.set(e.id, e);
      out.push(e);
    }
  }
  return out;
}
