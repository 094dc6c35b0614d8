/**
 * A fixture run folder for report tests: metrics.jsonl, data-report.json, evaluation.json and
 * config.json as `train` writes them, a few generated images, and predictions with known errors.
 * No model and no real data needed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { buildEvaluationReport, type EvaluationReport, type ReportPrediction } from '../../src/eval/evaluation-report.js';
import type { RunArtifacts } from '../../src/eval/run-folder.js';

export const CLASSES = ['back', 'front', 'none'];

/** 12 images: 4 per class; 3 wrong (one of them with a path that needs HTML escaping). */
export const PREDICTIONS: ReportPrediction[] = [
  { path: 'back/b1.jpg', label: 'back', predicted: 'back', probabilities: [0.9, 0.05, 0.05] },
  { path: 'back/b2.jpg', label: 'back', predicted: 'back', probabilities: [0.8, 0.15, 0.05] },
  { path: 'back/b3.jpg', label: 'back', predicted: 'back', probabilities: [0.7, 0.2, 0.1] },
  { path: 'back/b4 <odd> & "name".jpg', label: 'back', predicted: 'front', probabilities: [0.3, 0.6, 0.1] },
  { path: 'front/f1.jpg', label: 'front', predicted: 'front', probabilities: [0.02, 0.96, 0.02] },
  { path: 'front/f2.jpg', label: 'front', predicted: 'front', probabilities: [0.1, 0.8, 0.1] },
  { path: 'front/f3.jpg', label: 'front', predicted: 'front', probabilities: [0.2, 0.6, 0.2] },
  { path: 'front/f4.jpg', label: 'front', predicted: 'none', probabilities: [0.05, 0.1, 0.85] },
  { path: 'none/n1.jpg', label: 'none', predicted: 'none', probabilities: [0.05, 0.05, 0.9] },
  { path: 'none/n2.jpg', label: 'none', predicted: 'none', probabilities: [0.1, 0.2, 0.7] },
  { path: 'none/n3.jpg', label: 'none', predicted: 'none', probabilities: [0.2, 0.3, 0.5] },
  { path: 'none/n4.jpg', label: 'none', predicted: 'front', probabilities: [0.1, 0.5, 0.4] },
];

export const EPOCHS = [1, 2, 3, 4].map((epoch) => ({
  epoch,
  trainLoss: 1 / epoch,
  trainAccuracy: 0.5 + epoch / 10,
  valLoss: 0.9 / epoch + (epoch === 4 ? 0.2 : 0),
  valAccuracy: 0.55 + epoch / 12,
  valMacroF1: 0.5 + epoch / 12,
  lr: epoch < 3 ? 1e-3 : 5e-4,
  seconds: 2,
}));

/** Writes the run folder and the images (solid colours) under `root`; returns { runDir, dataDir }. */
export async function makeFixtureRun(root: string): Promise<{ runDir: string; dataDir: string }> {
  const runDir = join(root, 'run');
  const dataDir = join(root, 'data');
  await mkdir(runDir, { recursive: true });
  await writeFile(join(runDir, 'config.json'), '{"backbone":"mobilenet_v2"}\n');
  await writeFile(join(runDir, 'metrics.jsonl'), EPOCHS.map((e) => JSON.stringify(e)).join('\n') + '\n');
  await writeFile(join(runDir, 'evaluation.json'), JSON.stringify({ split: 'val', bestEpoch: 3 }) + '\n');
  await writeFile(
    join(runDir, 'data-report.json'),
    JSON.stringify({
      classes: CLASSES,
      counts: { back: { train: 16, val: 4 }, front: { train: 16, val: 4 }, none: { train: 16, val: 4 } },
      skipped: [{ path: 'none/broken.jpg', reason: 'corrupt JPEG data' }],
      duplicates: [{ sha256: 'x', label: 'back', kept: 'back/a.jpg', dropped: ['back/a copy.jpg'] }],
      conflicts: [],
      nearDuplicatesAcrossSplit: [{ train: 'front/t9.jpg', val: 'front/f2.jpg', distance: 3 }],
    }) + '\n',
  );
  for (const [i, p] of PREDICTIONS.entries()) {
    await mkdir(join(dataDir, p.path, '..'), { recursive: true });
    await sharp({ create: { width: 64 + i, height: 48, channels: 3, background: { r: 20 * i, g: 100, b: 200 - 10 * i } } }).jpeg().toFile(join(dataDir, p.path));
  }
  return { runDir, dataDir };
}

/** The evaluation report of PREDICTIONS for the fixture run (temperature 0.8). */
export function fixtureReport(runDir: string, dataDir: string, run: RunArtifacts | undefined): EvaluationReport {
  return buildEvaluationReport({
    classes: CLASSES,
    predictions: PREDICTIONS,
    temperature: 0.8,
    model: { path: runDir, backbone: 'mobilenet_v2_0.35' },
    data: { dir: dataDir, subset: 'val', skipped: [] },
    run,
  });
}
