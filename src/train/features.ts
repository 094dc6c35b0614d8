/**
 * Trunk activations per image and per augmented view, computed once by ONNX Runtime and cached
 * (in memory and on disk, keyed by content hash, backbone weights, cut, preprocessing and
 * augmentation) so that every training epoch costs only the trainable top.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Preprocessing } from '../backbones/registry.js';
import { normalizeToCHW } from '../backbones/preprocess.js';
import { augment, type AugmentConfig } from '../data/augment.js';
import { loadForModel, loadImage, type RgbImage } from '../data/image.js';
import type { Trunk } from '../model/trunk.js';
import { createRng } from '../util/rng.js';
import { sha256Hex } from '../util/hash.js';
import { writeFileAtomic } from '../util/fs.js';

export interface FeatureSource {
  path: string;
  sha256: string;
}

export interface FeatureStoreOptions {
  trunk: Trunk;
  preprocessing: Preprocessing;
  augment: AugmentConfig;
  /** Seeds the augmentation: view v of an image is a function of (seed, content hash, v). */
  seed: number;
  /** Identifies the trunk's weights and cut (part of the cache key). */
  trunkKey: string;
  /** Disk cache folder; undefined = memory only. */
  cacheDir?: string;
  /** Images decoded/augmented ahead of the trunk (sharp works on libuv threads meanwhile). */
  batchSize?: number;
}

export interface ExtractStats {
  views: number;
  fromDisk: number;
  computed: number;
  decodeSeconds: number;
  trunkSeconds: number;
}

/** Feature vectors: features[i][v] for source i, view v (view 0 is the un-augmented image). */
export type FeatureTable = Float32Array[][];

/**
 * Views for test-time augmentation: deterministic transforms of view 0 (no randomness), so that
 * the same transform can be folded into an exported ONNX graph and give the same numbers.
 */
export type TestView = 'hflip' | 'rot90';

/** Turns a square RGB image a quarter turn clockwise (a phone photographed lying sideways). */
export function rotateRgb90(img: RgbImage): RgbImage {
  const { width: n, height, data } = img;
  if (n !== height) throw new Error(`rotateRgb90: the image must be square, got ${n}x${height}`);
  const out = new Uint8Array(data.length);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const src = (y * n + x) * 3;
      const dst = (x * n + (n - 1 - y)) * 3; // (x, y) -> (n-1-y, x)
      out[dst] = data[src]!;
      out[dst + 1] = data[src + 1]!;
      out[dst + 2] = data[src + 2]!;
    }
  }
  return { data: out, width: n, height: n };
}

/** Mirrors a size x size RGB image left-right (what a flip of the input tensor's W axis does). */
export function flipRgb(img: RgbImage): RgbImage {
  const { width: w, height: h, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const src = (y * w + x) * 3;
      const dst = (y * w + (w - 1 - x)) * 3;
      out[dst] = data[src]!;
      out[dst + 1] = data[src + 1]!;
      out[dst + 2] = data[src + 2]!;
    }
  }
  return { data: out, width: w, height: h };
}

export class FeatureStore {
  readonly key: string;
  private readonly opts: FeatureStoreOptions;

  /** Key of the views that depend on neither augmentation nor seed (view 0, test views). */
  private readonly plainKey: string;

  constructor(opts: FeatureStoreOptions) {
    this.opts = opts;
    this.key = sha256Hex(
      JSON.stringify({ v: 1, trunk: opts.trunkKey, pre: opts.preprocessing, aug: opts.augment, seed: opts.seed }),
    ).slice(0, 24);
    this.plainKey = sha256Hex(JSON.stringify({ v: 1, trunk: opts.trunkKey, pre: opts.preprocessing })).slice(0, 24);
  }

  /** Cache file of a view: a number (0 = clean, others augmented) or a test-time view's name. */
  private file(sha: string, view: number | TestView): string | undefined {
    if (!this.opts.cacheDir) return undefined;
    // View 0 and test views do not depend on augmentation or seed: share them across runs with other settings.
    const key = view === 0 || typeof view === 'string' ? this.plainKey : this.key;
    return join(this.opts.cacheDir, 'features', key, sha.slice(0, 2), `${sha}-${view}.f32`);
  }

  private async readCached(sha: string, view: number | TestView): Promise<Float32Array | undefined> {
    const f = this.file(sha, view);
    if (!f) return undefined;
    try {
      const buf = await readFile(f);
      if (buf.byteLength !== this.opts.trunk.outputSize * 4) return undefined;
      return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    } catch {
      return undefined;
    }
  }

  private async writeCached(sha: string, view: number | TestView, data: Float32Array): Promise<void> {
    const f = this.file(sha, view);
    if (!f) return;
    await writeFileAtomic(f, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  /** One view as size x size RGB. */
  private async view(src: FeatureSource, decoded: RgbImage | undefined, view: number | TestView): Promise<RgbImage> {
    const { size, resize } = this.opts.preprocessing;
    if (view === 'hflip') return flipRgb(await loadForModel(src.path, size, resize));
    if (view === 'rot90') return rotateRgb90(await loadForModel(src.path, size, resize));
    if (view === 0) return loadForModel(src.path, size, resize);
    const rng = createRng(this.opts.seed).fork(src.sha256).fork(view);
    return augment(decoded!, size, rng, this.opts.augment);
  }

  /**
   * Features for `views` views of every source. `onProgress(doneViews, totalViews)` reports
   * progress. Decode errors propagate (callers filter undecodable files beforehand).
   */
  async extract(
    sources: readonly FeatureSource[],
    views: number | readonly TestView[],
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ features: FeatureTable; stats: ExtractStats }> {
    const { trunk, preprocessing } = this.opts;
    const stats: ExtractStats = { views: 0, fromDisk: 0, computed: 0, decodeSeconds: 0, trunkSeconds: 0 };
    // features[i][v] is views[v] when test views are asked for, else view number v.
    const viewIds: (number | TestView)[] = typeof views === 'number' ? Array.from({ length: views }, (_, v) => v) : [...views];
    const total = sources.length * viewIds.length;
    const features: FeatureTable = sources.map(() => new Array<Float32Array>(viewIds.length));
    const todo: { i: number; v: number }[] = [];
    await Promise.all(
      sources.map(async (s, i) => {
        for (let v = 0; v < viewIds.length; v++) {
          const hit = await this.readCached(s.sha256, viewIds[v]!);
          if (hit) {
            features[i]![v] = hit;
            stats.fromDisk++;
          } else todo.push({ i, v });
        }
      }),
    );
    let done = stats.fromDisk;
    onProgress?.(done, total);
    todo.sort((a, b) => a.i - b.i || a.v - b.v);

    const size = preprocessing.size;
    const per = 3 * size * size;
    const batch = this.opts.batchSize ?? 16;
    // Prepare batch k+1 (decode, augment, normalise) while the trunk runs batch k.
    const prepare = async (jobs: { i: number; v: number }[]): Promise<Float32Array> => {
      const t0 = performance.now();
      const x = new Float32Array(jobs.length * per);
      const decodedCache = new Map<number, Promise<RgbImage>>();
      await Promise.all(
        jobs.map(async (job, k) => {
          const src = sources[job.i]!;
          let decoded: RgbImage | undefined;
          const id = viewIds[job.v]!;
          if (typeof id === 'number' && id > 0) {
            let p = decodedCache.get(job.i);
            if (!p) {
              p = loadImage(src.path, { maxSide: 2 * size + size / 2 });
              decodedCache.set(job.i, p);
            }
            decoded = await p;
          }
          const img = await this.view(src, decoded, id);
          normalizeToCHW(img.data, preprocessing, x, k * per);
        }),
      );
      stats.decodeSeconds += (performance.now() - t0) / 1000;
      return x;
    };
    const chunks: { i: number; v: number }[][] = [];
    for (let k = 0; k < todo.length; k += batch) chunks.push(todo.slice(k, k + batch));
    let next = chunks.length > 0 ? prepare(chunks[0]!) : undefined;
    for (let c = 0; c < chunks.length; c++) {
      const jobs = chunks[c]!;
      const x = await next!;
      next = c + 1 < chunks.length ? prepare(chunks[c + 1]!) : undefined;
      const t0 = performance.now();
      const y = await trunk.run(x, jobs.length);
      stats.trunkSeconds += (performance.now() - t0) / 1000;
      const n = trunk.outputSize;
      await Promise.all(
        jobs.map((job, k) => {
          const f = y.slice(k * n, (k + 1) * n);
          features[job.i]![job.v] = f;
          return this.writeCached(sources[job.i]!.sha256, viewIds[job.v]!, f);
        }),
      );
      stats.computed += jobs.length;
      done += jobs.length;
      onProgress?.(done, total);
    }
    stats.views = total;
    return { features, stats };
  }
}
