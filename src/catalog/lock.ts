/**
 * One writer per catalog file: `FILE.lock` is created exclusively (O_EXCL) and holds the writer's
 * pid and host. A second run finds it and is refused, unless the lock is stale: written on this
 * host by a process that no longer exists (a run that was killed), which is then taken over.
 * A lock from another host is never taken over: we cannot tell whether that process still runs.
 */
import { hostname } from 'node:os';
import { readFile, rm, writeFile } from 'node:fs/promises';

export class CatalogLockedError extends Error {
  override readonly name = 'CatalogLockedError';
}

export interface FileLock {
  readonly path: string;
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM'; // exists, owned by someone else
  }
}

async function owner(lockPath: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(lockPath, 'utf8')) as Partial<LockOwner>;
    return typeof o.pid === 'number' && typeof o.host === 'string' ? { pid: o.pid, host: o.host } : undefined;
  } catch {
    return undefined;
  }
}

/** Takes `<target>.lock`; a CatalogLockedError names the process that holds it. */
export async function lockFile(target: string, shown = target): Promise<FileLock> {
  const lockPath = `${target}.lock`;
  const me: LockOwner = { pid: process.pid, host: hostname() };
  for (let attempt = 0; ; attempt++) {
    try {
      await writeFile(lockPath, `${JSON.stringify(me)}\n`, { flag: 'wx' });
      return { path: lockPath, release: () => rm(lockPath, { force: true }) };
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err;
    }
    const o = await owner(lockPath);
    // An unreadable lock may be one being written right now: refuse rather than guess.
    const stale = o !== undefined && o.host === me.host && o.pid !== me.pid && !alive(o.pid);
    if (!stale || attempt > 0) {
      const who = o === undefined ? 'another process' : `process ${o.pid} on ${o.host}`;
      throw new CatalogLockedError(`${shown} is being written by ${who} (lock file ${lockPath}); if no such run is going on, delete the lock file`);
    }
    await rm(lockPath, { force: true });
  }
}
