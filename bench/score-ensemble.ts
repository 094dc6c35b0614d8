/**
 * Scores an ensemble from the recipe study's saved cv reports alone (combineCvReports: each
 * member calibrated with its own out-of-fold temperature, probabilities averaged, same folds, so
 * every image is still predicted only by models that never saw its group).
 *
 *   node --import tsx bench/score-ensemble.ts runs/study.jsonl.oof/A.json runs/study.jsonl.oof/B.json ...
 */
import { readFile } from 'node:fs/promises';
import { combineCvReports } from '../src/eval/cv-ensemble.js';
import type { CvReport } from '../src/eval/cv-report.js';
import { formatGroupTable } from '../src/eval/group-metrics.js';

const files = process.argv.slice(2);
if (files.length < 2) {
  console.error('usage: score-ensemble.ts CV.json CV.json [CV.json ...]');
  process.exit(2);
}
const members = await Promise.all(files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as CvReport));
const ensemble = combineCvReports(members);
process.stdout.write(`${files.join(' + ')}\n${formatGroupTable(ensemble, ensemble.classes)}\n`);
