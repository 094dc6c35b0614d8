/** Small JPEG thumbnails as data: URIs, so an HTML report carries its images inside it. */
import sharp from 'sharp';

export interface ThumbnailOptions {
  /** Longest side in pixels (default 240: sharp on 2x screens at the gallery's 180 px). */
  size?: number;
  quality?: number;
  concurrency?: number;
}

/**
 * Thumbnails for `items` keyed by `key`; an image that cannot be read is left out (the report
 * shows it without a picture rather than failing).
 */
export async function makeThumbnails(items: readonly { key: string; file: string }[], o: ThumbnailOptions = {}): Promise<Map<string, string>> {
  const size = o.size ?? 240;
  const out = new Map<string, string>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const it = items[next++]!;
      try {
        const jpeg = await sharp(it.file, { failOn: 'none', limitInputPixels: 100e6 })
          .rotate()
          .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
          .flatten({ background: '#ffffff' })
          .jpeg({ quality: o.quality ?? 72 })
          .toBuffer();
        out.set(it.key, `data:image/jpeg;base64,${jpeg.toString('base64')}`);
      } catch {
        // left out: the gallery shows "(no thumbnail)"
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 4) }, worker));
  return out;
}
