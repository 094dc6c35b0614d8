/**
 * For the catalog tests: temp folders of real photos (copied or linked from ../shared at test
 * time, never kept in the repository), synthetic catalog records, and reading an output back.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRecordLine, recordLine, type CatalogRecord } from '../../src/catalog/record.js';
import { DATA, MANIFEST } from './paths.js';

/** Data-set photos (paths), `n` with distinct content, in manifest order from `offset`. */
export function distinctPhotos(n: number, offset = 0): string[] {
  const rows = readFileSync(MANIFEST, 'utf8').trim().split('\n').slice(1);
  const seen = new Set<string>();
  const out: string[] = [];
  for (const row of rows.slice(offset)) {
    const file = join(DATA, row.split(',')[0]!);
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');
    if (seen.has(sha)) continue;
    seen.add(sha);
    out.push(file);
    if (out.length === n) break;
  }
  return out;
}

export async function tempDir(tag: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `phoneside-catalog-${tag}-`));
}

/** `photos` copied (or symlinked) into `dir` as img-000.jpg, img-001.jpg ... (`prefix` instead of img). */
export async function fillFolder(dir: string, photos: readonly string[], how: 'copy' | 'symlink' = 'copy', prefix = 'img'): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const names: string[] = [];
  for (const [i, p] of photos.entries()) {
    const to = join(dir, `${prefix}-${String(i).padStart(3, '0')}.jpg`);
    if (how === 'copy') await copyFile(p, to);
    else await symlink(p, to);
    names.push(to);
  }
  return names;
}

export const sha256Of = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The records of a catalog output; throws on a line that is not one (a test failure). */
export function readRecords(path: string): CatalogRecord[] {
  const text = readFileSync(path, 'utf8');
  if (text !== '' && !text.endsWith('\n')) throw new Error(`${path}: last line has no newline`);
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l, i) => {
      const r = parseRecordLine(l);
      if (r === undefined) throw new Error(`${path}: line ${i + 1} is not a record: ${l.slice(0, 80)}`);
      return r;
    });
}

/** A synthetic record of content number `i` (its sha256 is that of the text `i`). */
export function syntheticRecord(i: number, model = { id: 'synthetic', version: '20240101-000000000000' }): CatalogRecord {
  const sha256 = createHash('sha256').update(String(i)).digest('hex');
  return { path: `photos/${i}.jpg`, sha256, label: 'front', predicted: 'front', confidence: 0.9, probabilities: { back: 0.05, front: 0.9, none: 0.05 }, model };
}

export const syntheticLine = (i: number): string => recordLine(syntheticRecord(i));
