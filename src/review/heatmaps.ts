/**
 * Heat maps for the review page: where a model looks for the suggested class of each suspect,
 * drawn over the photo (explain/report-heatmaps.ts). The model is one trained on all the images,
 * the suspect included, so the map says what the model keys on, not why the out-of-fold
 * prediction disagreed.
 */
import { heatmapsOfModel, type HeatmapItem } from '../explain/report-heatmaps.js';

export type { HeatmapItem };

export interface SuspectHeatmaps {
  /** Data-relative path -> the overlay as a data: URI. */
  maps: Map<string, string>;
  /** What the maps are (method, model), or why some are missing. */
  note: string;
}

/** Loads `modelRef` and draws each item's map for its class. */
export async function suspectHeatmaps(modelRef: string, items: readonly HeatmapItem[]): Promise<SuspectHeatmaps> {
  const drawn = await heatmapsOfModel(modelRef, items, {}, { size: 224 });
  const method = [...new Set([...drawn.values()].map((h) => h.method))].join(', ');
  const skipped = items.length - drawn.size;
  return {
    maps: new Map([...drawn].map(([key, h]) => [key, h.src])),
    note:
      `Heat maps: ${method || 'none drawn'} of ${modelRef} (trained on all the images, the suspect included) for the suggested class.` +
      (skipped ? ` ${skipped} suspect(s) without one (could not be explained).` : ''),
  };
}
