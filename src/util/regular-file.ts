/**
 * Reading a file named by a user, or found in a folder a user named, without trusting what it is:
 * only regular files are read (a FIFO named `x.jpg` would block a read forever, a device could
 * be endless), opening never blocks (O_NONBLOCK: a FIFO without a writer opens at once and is
 * then refused by fstat), and the size is capped before a byte is allocated.
 */
import { constants, type BigIntStats, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { displayPath, specialKind, type FsPath } from './list-dir.js';

/** Stable, short, user-facing reasons. */
export const FILE_REASONS = {
  notFound: 'file not found',
  permission: 'permission denied',
  loop: 'symbolic link loop',
  nameTooLong: 'file name too long',
} as const;

export class FileReadError extends Error {
  override readonly name = 'FileReadError';
  /** Display path (non-UTF-8 bytes escaped). */
  readonly path: string;
  /** Short human reason, e.g. 'not a regular file (FIFO)'. */
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

/** What a non-regular file is, in words: 'folder', 'FIFO', 'socket', 'device', or 'special file'. */
export function fileKind(s: Stats | BigIntStats): string {
  return s.isDirectory() ? 'folder' : specialKind(s);
}

export const notRegularReason = (s: Stats | BigIntStats): string => notRegular(fileKind(s));

/** 'not a regular file (FIFO)' and the like: the reason every reader gives. */
export const notRegular = (kind: string): string => `not a regular file (${kind})`;

/** An fs error -> a short reason ('file not found', 'permission denied', ...). */
export function fsErrorReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return FILE_REASONS.notFound;
    case 'EACCES':
    case 'EPERM':
      return FILE_REASONS.permission;
    case 'ELOOP':
      return FILE_REASONS.loop;
    case 'ENAMETOOLONG':
      return FILE_REASONS.nameTooLong;
    case 'EISDIR':
      return notRegular('folder');
    default:
      return `unreadable (${typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)})`;
  }
}

const O_NONBLOCK = constants.O_NONBLOCK ?? 0;
const O_NOCTTY = constants.O_NOCTTY ?? 0;

export interface OpenedFile {
  handle: FileHandle;
  size: number;
}

/**
 * Opens `path` for reading if (after following links) it is a regular file; else a FileReadError.
 * The type is checked before opening (so a device is never opened) and again on the open
 * descriptor (so a file swapped for a FIFO in between is refused too).
 */
export async function openRegularFile(path: FsPath): Promise<OpenedFile> {
  const shown = displayPath(path);
  const fail = (reason: string): never => {
    throw new FileReadError(shown, reason);
  };
  const before = await stat(path).catch((err: unknown) => fail(fsErrorReason(err)));
  if (!before.isFile()) fail(notRegularReason(before));
  const handle = await open(path, constants.O_RDONLY | O_NONBLOCK | O_NOCTTY).catch((err: unknown) => fail(fsErrorReason(err)));
  try {
    const s = await handle.stat();
    if (!s.isFile()) fail(notRegularReason(s));
    return { handle, size: s.size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

const MiB = 1024 * 1024;

/** Default cap of readRegularFile: no photo comes near it. */
export const MAX_FILE_BYTES = 256 * MiB;

/** The bytes of a regular file, at most `maxBytes` (a bigger file is refused, not truncated). */
export async function readRegularFile(path: FsPath, maxBytes = MAX_FILE_BYTES): Promise<Buffer> {
  const { handle, size } = await openRegularFile(path);
  try {
    if (size > maxBytes) throw new FileReadError(displayPath(path), `file too large (${(size / MiB).toFixed(0)} MiB; at most ${(maxBytes / MiB).toFixed(0)} MiB)`);
    // Read what fstat announced (a file that grows meanwhile is read to that size; one that shrinks, to its end).
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await handle.read(buf, got, size - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === size ? buf : buf.subarray(0, got);
  } catch (err) {
    if (err instanceof FileReadError) throw err;
    throw new FileReadError(displayPath(path), fsErrorReason(err));
  } finally {
    await handle.close();
  }
}
