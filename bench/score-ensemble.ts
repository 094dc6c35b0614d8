/**
 * Scores an ensemble from the recipe study's saved out-of-fold predictions alone: each member's
 * logits are calibrated with its own pooled temperature, the probabilities averaged, and the
 * result scored per group and pooled (the same folds, so every image is still predicted only by
 * models that never saw its group).
 *
 *   node --import tsx bench/score-ensemble.ts runs/study.jsonl.oof/A.json runs/study.jsonl.oof/B.json ...
 */
import { readFile } from 'node:fs/promises';
import { fitTemperature, softmaxWithTemperature } from '../src/eval/calibration.js';
import { formatGroupTable, groupedScores } from '../src/eval/group-metrics.js';

interface OofFile {
  classes: string[];
  rows: { path: string; label: string; group: string; logits: number[] }[];
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: score-ensemble.ts OOF.json [OOF.json ...]');
  process.exit(2);
}
const members = await Promise.all(files.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as OofFile));
const classes = members[0]!.classes;
const byPath = members.map((m) => new Map(m.rows.map((r) => [r.path, r])));
const paths = members[0]!.rows.map((r) => r.path);
for (const [i, m] of byPath.entries()) if (m.size !== paths.length || paths.some((p) => !m.has(p))) throw new Error(`${files[i]} holds other images`);
const labels = paths.map((p) => classes.indexOf(byPath[0]!.get(p)!.label));
const probs = byPath.map((m) => {
  const logits = paths.map((p) => m.get(p)!.logits);
  return softmaxWithTemperature(logits, fitTemperature(logits, labels));
});
const mean = paths.map((_, i) => classes.map((_, k) => probs.reduce((a, p) => a + p[i]![k]!, 0) / probs.length));
const scores = groupedScores(paths.map((p, i) => ({ group: byPath[0]!.get(p)!.group, label: labels[i]!, probabilities: mean[i]! })), classes);
process.stdout.write(`${files.join(' + ')}\n${formatGroupTable(scores, classes)}\n`);
