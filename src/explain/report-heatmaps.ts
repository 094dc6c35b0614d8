/**
 * Heat maps for the evaluation report's gallery of mistakes: the evidence for the class the model
 * predicted, over each photo, as small embedded JPEGs (renderEvaluationHtml's `heatmaps`). The
 * report code never loads a model: whoever has the classifier at hand makes these and passes them.
 */
import type { GalleryHeatmap } from '../eval/html/evaluation-page.js';
import type { Classifier } from '../infer/classifier.js';
import { explainEach, type ExplainOptions } from './explain.js';
import { heatmapOverlayJpeg } from './overlay.js';

export interface ReportHeatmapOptions {
  /** As explainImages (default 'auto'). */
  method?: ExplainOptions['method'];
  /** Side of the pictures (default 240, as the thumbnails). */
  size?: number;
}

/**
 * Heat maps of `items` (report key and file) keyed like the thumbnails; an image that cannot be
 * read is left out (the gallery then shows its thumbnail alone).
 */
export async function reportHeatmaps(clf: Classifier, items: readonly { key: string; file: string }[], opts: ReportHeatmapOptions = {}): Promise<Map<string, GalleryHeatmap>> {
  const out = new Map<string, GalleryHeatmap>();
  let i = 0;
  for await (const e of explainEach(clf, items.map((it) => it.file), { method: opts.method ?? 'auto' })) {
    const key = items[i++]!.key;
    const map = e.maps[0];
    if (e.error !== undefined || map === undefined) continue;
    try {
      const jpeg = await heatmapOverlayJpeg(e.path, map, { size: opts.size ?? 240, resize: clf.preprocessing.resize });
      out.set(key, { src: `data:image/jpeg;base64,${Buffer.from(jpeg).toString('base64')}`, method: e.method });
    } catch {
      // left out: the thumbnail is shown alone
    }
  }
  return out;
}
