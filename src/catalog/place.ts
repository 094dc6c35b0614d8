/**
 * `--sort-into DIR`: each classified image placed at DIR/<label>/<name> (label: a class or
 * `uncertain`; images that failed are not placed: their records say why).
 *
 * Never overwrites: the final name is made with link(2), which fails when the name exists; the
 * next name is then tried (`name-1.jpg`, `name-2.jpg`, ...). A copy is written to a temp name
 * in the target folder, fsynced, then linked to its final name, so a name in DIR always holds a
 * whole file. --link makes a hard link (a copy, with a note, across file systems). --move links
 * or copies like that and removes the source only later, after the record is on disk
 * (removeSource), so no kill can lose an image or its record.
 *
 * Idempotent, so a rerun after a kill places nothing twice: an existing name in the chain whose
 * bytes are the image's (size, then sha256) means it was placed already.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, open, rm, stat, unlink } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { FsPath } from '../util/list-dir.js';
import { sha256File } from '../util/hash.js';

export type Placement = 'copy' | 'link' | 'move';

export interface PlaceRequest {
  source: FsPath;
  /** The file name to give it (its display name). */
  name: string;
  label: string;
  sha256: string;
  size: number;
}

export interface Placed {
  /** Where the image now is (or already was). */
  target: string;
  /** False when an identical file was there already (an interrupted run placed it). */
  fresh: boolean;
}

/** `name` with `-k` before its extension (k = 0: the name itself). */
export function suffixed(name: string, k: number): string {
  if (k === 0) return name;
  const ext = extname(name);
  const stem = ext.length > 0 && ext.length < name.length ? name.slice(0, -ext.length) : name;
  return `${stem}-${k}${ext.length < name.length ? ext : ''}`;
}

/** A file name that is safe as one path segment (record paths may carry anything). */
function safeName(name: string): string {
  const n = name.replace(/[/\0]/g, '_');
  return n === '' || n === '.' || n === '..' ? '_' : n;
}

const code = (err: unknown): string | undefined => (err as { code?: string }).code;

async function sameContent(path: string, size: number, sha256: string): Promise<boolean> {
  const s = await stat(path).catch(() => undefined);
  if (s === undefined || !s.isFile() || s.size !== size) return false;
  return (await sha256File(path)) === sha256;
}

/** fsync a file or folder by path (folders: so that a new name in it survives a crash). */
export async function syncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class Placer {
  /** Folders that got new names since the last flush (to fsync). */
  private readonly touched = new Set<string>();
  private copyNoted = false;

  constructor(
    readonly root: string,
    readonly placement: Placement,
    /** Told once when hard links are impossible (another file system) and copies are made. */
    private readonly onNote: (message: string) => void = () => {},
  ) {}

  /**
   * Links `from` (the source, or a complete temp copy) under the first free name of the chain;
   * undefined target when an identical file is found first (already placed).
   */
  private async linkFirstFree(from: FsPath, dir: string, req: PlaceRequest): Promise<Placed> {
    for (let k = 0; ; k++) {
      const target = join(dir, suffixed(safeName(req.name), k));
      try {
        await link(from, target);
        this.touched.add(dir);
        return { target, fresh: true };
      } catch (err) {
        if (code(err) !== 'EEXIST') throw err;
      }
      if (await sameContent(target, req.size, req.sha256)) return { target, fresh: false };
    }
  }

  /** Copies to a temp name in `dir`, fsynced, so that what gets linked is whole. */
  private async tempCopy(req: PlaceRequest, dir: string): Promise<string> {
    const tmp = join(dir, `.phoneside-${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    await copyFile(req.source, tmp);
    await syncPath(tmp);
    return tmp;
  }

  /** Places one image (see the module comment); the source stays until removeSource. */
  async place(req: PlaceRequest): Promise<Placed> {
    const dir = join(this.root, req.label);
    await mkdir(dir, { recursive: true });
    if (this.placement !== 'copy') {
      try {
        return await this.linkFirstFree(req.source, dir, req);
      } catch (err) {
        if (code(err) !== 'EXDEV' && code(err) !== 'EPERM' && code(err) !== 'ENOTSUP') throw err;
        if (!this.copyNoted) {
          this.copyNoted = true;
          this.onNote(`cannot hard-link into ${this.root} (${code(err)}: another file system?): copying instead`);
        }
      }
    }
    const tmp = await this.tempCopy(req, dir);
    try {
      return await this.linkFirstFree(tmp, dir, req);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /**
   * Where an image is already placed under any of `labels`, if anywhere: what a --move rerun
   * asks about a file whose record is written but whose source was not removed yet.
   */
  async findPlaced(req: Omit<PlaceRequest, 'label'>, labels: readonly string[]): Promise<string | undefined> {
    for (const label of labels) {
      for (let k = 0; ; k++) {
        const target = join(this.root, label, suffixed(safeName(req.name), k));
        if ((await stat(target).catch(() => undefined)) === undefined) break;
        if (await sameContent(target, req.size, req.sha256)) return target;
      }
    }
    return undefined;
  }

  /** fsyncs the folders that got new names, so that placements survive a crash before records do. */
  async flush(): Promise<void> {
    const dirs = [...this.touched];
    this.touched.clear();
    for (const d of dirs) await syncPath(d);
  }
}

/** --move's last step: the source goes, once its copy and record are on disk. */
export async function removeSource(source: FsPath): Promise<void> {
  await unlink(source).catch((err: unknown) => {
    if (code(err) !== 'ENOENT') throw err;
  });
}
