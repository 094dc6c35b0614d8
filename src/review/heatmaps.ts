/**
 * Heat maps for the review page: where a model looks for the suggested class of each suspect,
 * drawn over the photo (src/explain), as small JPEG data: URIs. The model is one trained on all
 * the images, the suspect included, so the map says what the model keys on, not why the
 * out-of-fold prediction disagreed.
 */
import sharp from 'sharp';
import { explainEach, heatmapOverlayPng } from '../explain/explain.js';
import { Classifier } from '../infer/classifier.js';

export interface HeatmapItem {
  /** The file to explain. */
  file: string;
  /** The key of the result (the data-relative path). */
  relPath: string;
  /** The class whose map to draw. */
  cls: string;
}

export interface SuspectHeatmaps {
  maps: Map<string, string>;
  /** What the maps are (method, model), or why some are missing. */
  note: string;
}

/** Overlays of `clf`'s map for each item's class; an image that cannot be explained is left out. */
export async function heatmapsWith(clf: Classifier, items: readonly HeatmapItem[], opts: { size?: number; threads?: number } = {}): Promise<SuspectHeatmaps> {
  const maps = new Map<string, string>();
  let method = '';
  let failed = 0;
  const wanted = items.filter((it) => clf.classes.includes(it.cls));
  let i = 0;
  for await (const e of explainEach(clf, wanted.map((it) => it.file), { classes: 'all', ...(opts.threads !== undefined ? { threads: opts.threads } : {}) })) {
    const it = wanted[i++]!;
    method = e.method;
    const map = e.maps.find((m) => m.class === it.cls);
    if (e.error !== undefined || map === undefined) {
      failed++;
      continue;
    }
    const png = await heatmapOverlayPng(it.file, map, { size: opts.size ?? 224 });
    // JPEG: a page of PNG overlays would weigh megabytes.
    const jpeg = await sharp(png).jpeg({ quality: 75 }).toBuffer();
    maps.set(it.relPath, `data:image/jpeg;base64,${jpeg.toString('base64')}`);
  }
  const skipped = items.length - maps.size;
  return {
    maps,
    note:
      `Heat maps: ${method || 'none drawn'} of ${clf.source.path} (trained on all the images, the suspect included) for the suggested class.` +
      (skipped ? ` ${skipped} suspect(s) without one (${failed} could not be explained).` : ''),
  };
}

/** Loads `modelRef` and draws the maps; the classifier is released afterwards. */
export async function suspectHeatmaps(modelRef: string, items: readonly HeatmapItem[], opts: { size?: number; threads?: number } = {}): Promise<SuspectHeatmaps> {
  const clf = await Classifier.load(modelRef, opts.threads !== undefined ? { threads: opts.threads } : {});
  try {
    return await heatmapsWith(clf, items, opts);
  } finally {
    await clf.dispose();
  }
}
