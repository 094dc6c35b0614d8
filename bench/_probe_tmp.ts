import sharp from 'sharp';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadForModel } from '../src/data/image.js';
const D = '../shared/datasets/phones';
const files: string[] = [];
for (const c of ['back', 'front', 'none']) { const n = (await readdir(join(D, c))).filter(f => f.endsWith('.jpg')).sort(); const st = Math.floor(n.length / 22); for (let i = 0; i < 22 && i * st < n.length; i++) files.push(join(D, c, n[i * st]!)); }
const metas = await Promise.all(files.slice(0, 8).map(f => sharp(f).metadata()));
console.log(metas.map(m => `${m.width}x${m.height} ${m.chromaSubsampling} o${m.orientation ?? '-'}`).join(', '), sharp.concurrency(), process.env.UV_THREADPOOL_SIZE);
const bufs = await Promise.all(files.map(f => readFile(f)));
const variants: [string, (i: number) => Promise<unknown>][] = [
  ['loadForModel', (i) => loadForModel(files[i]!, 224, 'squash')],
  ['plain resize fill raw', (i) => sharp(files[i]!).resize(224, 224, { fit: 'fill' }).raw().toBuffer()],
  ['rotate+resize raw', (i) => sharp(files[i]!).rotate().resize(224, 224, { fit: 'fill' }).raw().toBuffer()],
  ['from buffer loadForModel', (i) => loadForModel(bufs[i]!, 224, 'squash')],
  ['resize kernel linear', (i) => sharp(files[i]!).rotate().resize(224, 224, { fit: 'fill', kernel: 'linear' }).removeAlpha().raw().toBuffer()],
  ['metadata only', (i) => sharp(files[i]!).metadata()],
];
for (const bs of [8, 64]) for (const [name, f] of variants) {
  const t0 = performance.now(); let n = 0;
  while (performance.now() - t0 < 1500) { for (let i = 0; i < files.length; i += bs) { await Promise.all(Array.from({ length: Math.min(bs, files.length - i) }, (_, k) => f(i + k))); n += Math.min(bs, files.length - i); } }
  console.log(`bs ${bs} ${name}: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)} img/s`);
}
