/** Writing an evaluation report to disk: thumbnails of the mistakes, then the HTML page. */
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import type { EvaluationReport } from './evaluation-report.js';
import { renderEvaluationHtml, type GalleryHeatmap } from './html/evaluation-page.js';
import { makeThumbnails } from './thumbnails.js';

export interface HtmlReportOptions {
  /** Where the report's image paths are relative to (the data folder). */
  dataDir: string;
  galleryLimit?: number;
  /** Heat maps of the gallery's mistakes, keyed by report path (explain/report-heatmaps.ts makes them). */
  heatmaps?: ReadonlyMap<string, GalleryHeatmap>;
}

/** Mistakes shown in the gallery by default. */
export const GALLERY_LIMIT = 120;

export async function evaluationHtml(report: EvaluationReport, o: HtmlReportOptions): Promise<string> {
  const limit = o.galleryLimit ?? GALLERY_LIMIT;
  const thumbnails = await makeThumbnails(report.mistakes.slice(0, limit).map((m) => ({ key: m.path, file: join(o.dataDir, m.path) })));
  return renderEvaluationHtml(report, { thumbnails, galleryLimit: limit, ...(o.heatmaps !== undefined ? { heatmaps: o.heatmaps } : {}) });
}

export async function writeEvaluationHtml(path: string, report: EvaluationReport, o: HtmlReportOptions): Promise<void> {
  await writeFile(path, await evaluationHtml(report, o));
}
