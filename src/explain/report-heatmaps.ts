/**
 * Heat maps for pages that show many photos (the evaluation report's gallery of mistakes, the
 * review page's suspects): the evidence for one class over each photo, as small embedded JPEGs.
 * The report code never loads a model: whoever has the classifier at hand makes these and passes
 * them (reportHeatmaps), or names the model (heatmapsOfModel).
 */
import type { GalleryHeatmap } from '../eval/html/evaluation-page.js';
import { Classifier, type LoadClassifierOptions } from '../infer/classifier.js';
import { explainEach, type ExplainOptions } from './explain.js';
import { heatmapOverlayJpeg } from './overlay.js';

export interface ReportHeatmapOptions {
  /** As explainImages (default 'auto'). */
  method?: ExplainOptions['method'];
  /** Side of the pictures (default 240, as the thumbnails). */
  size?: number;
}

export interface HeatmapItem {
  /** Where the result goes in the map (e.g. the report's data-relative path). */
  key: string;
  file: string;
  /** The class whose evidence is drawn (default: the class the model predicts). */
  cls?: string;
}

/**
 * Heat maps of `items` keyed by `key`; an image that cannot be read or explained, or whose `cls`
 * the model does not have, is left out (the page then shows its photo alone).
 */
export async function reportHeatmaps(clf: Classifier, items: readonly HeatmapItem[], opts: ReportHeatmapOptions = {}): Promise<Map<string, GalleryHeatmap>> {
  const out = new Map<string, GalleryHeatmap>();
  const wanted = items.filter((it) => it.cls === undefined || clf.classes.includes(it.cls));
  const classes = wanted.some((it) => it.cls !== undefined) ? 'all' : 'predicted';
  let i = 0;
  for await (const e of explainEach(clf, wanted.map((it) => it.file), { method: opts.method ?? 'auto', classes })) {
    const it = wanted[i++]!;
    const map = it.cls === undefined ? e.maps[0] : e.maps.find((m) => m.class === it.cls);
    if (e.error !== undefined || map === undefined) continue;
    try {
      const jpeg = await heatmapOverlayJpeg(e.path, map, { size: opts.size ?? 240, resize: clf.preprocessing.resize });
      out.set(it.key, { src: `data:image/jpeg;base64,${Buffer.from(jpeg).toString('base64')}`, method: e.method });
    } catch {
      // left out: the photo is shown alone
    }
  }
  return out;
}

/** reportHeatmaps with the model `ref` loaded for it and released afterwards. */
export async function heatmapsOfModel(ref: string | undefined, items: readonly HeatmapItem[], load: LoadClassifierOptions = {}, opts: ReportHeatmapOptions = {}): Promise<Map<string, GalleryHeatmap>> {
  const clf = await Classifier.load(ref, load);
  try {
    return await reportHeatmaps(clf, items, opts);
  } finally {
    await clf.dispose();
  }
}
