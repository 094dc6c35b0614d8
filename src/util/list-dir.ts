/** Folder listing shared by dataset scanning and `predict`'s path expansion. */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface DirEntry {
  name: string;
  path: string;
  isDir: boolean;
}

/** Sort by UTF-16 code units: the same order on every OS and locale. */
export const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Entries of `dir`, sorted by name; symbolic links are followed, and a broken one is reported to
 * `onBrokenLink` and left out. Throws if `dir` cannot be read.
 */
export async function listDir(dir: string, onBrokenLink?: (path: string) => void): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, d.name);
    let isDir = d.isDirectory();
    if (d.isSymbolicLink()) {
      try {
        isDir = (await stat(path)).isDirectory();
      } catch {
        onBrokenLink?.(path);
        continue;
      }
    }
    out.push({ name: d.name, path, isDir });
  }
  return out.sort((a, b) => byCodePoint(a.name, b.name));
}
