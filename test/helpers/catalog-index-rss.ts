/**
 * Child process of the catalog memory test: opens a synthetic catalog of N records (written by
 * the test, record i having the sha256 of the text `i`), checks has() on present and absent
 * digests, and prints {records, rssBeforeMiB, rssAfterMiB, heapUsedMiB, openSeconds, ...} as JSON.
 * Run: node --expose-gc --import tsx test/helpers/catalog-index-rss.ts FILE N
 */
import { createHash } from 'node:crypto';
import { openCatalogOutput } from '../../src/catalog/output.js';

const [file, nText] = process.argv.slice(2);
const n = Number(nText);
const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

gc?.();
const before = process.memoryUsage();
const t0 = performance.now();
const out = await openCatalogOutput(file!);
const openSeconds = (performance.now() - t0) / 1000;
gc?.();
const after = process.memoryUsage();
let present = 0;
for (let i = 0; i < n; i += 997) present += out.has(sha(String(i))) ? 1 : 0;
let absent = 0;
for (let i = n; i < n + 1000; i++) absent += out.has(sha(String(i))) ? 0 : 1;
const last = out.has(sha(String(n - 1)));
await out.close();
process.stdout.write(
  `${JSON.stringify({
    records: out.done,
    openSeconds: Math.round(openSeconds * 100) / 100,
    rssBeforeMiB: mib(before.rss),
    rssAfterMiB: mib(after.rss),
    heapUsedAfterMiB: mib(after.heapUsed),
    arrayBuffersAfterMiB: mib(after.arrayBuffers),
    presentChecked: Math.ceil(n / 997),
    present,
    absent,
    last,
  })}\n`,
);
