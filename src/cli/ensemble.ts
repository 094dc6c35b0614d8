/**
 * `phoneside ensemble MODEL MODEL... --out DIR`: several trained models as one (see
 * infer/ensemble.ts): copies the member bundles into DIR/<name>/ and writes DIR/ensemble.json.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { combineCvReports } from '../eval/cv-ensemble.js';
import { readCvReport, type CvReport } from '../eval/cv-report.js';
import { loadBundle } from '../model/bundle.js';
import { createEnsemble } from '../infer/ensemble.js';
import { resolveModelPath } from '../infer/load.js';
import { CommandUsageError, isUsageError, usage, type CliIO } from './options.js';

export const ENSEMBLE_HELP = `phoneside ensemble MODEL MODEL... --out DIR [options]

Makes an ensemble: one model whose probabilities are the mean of its members' (each with its own
preprocessing and temperature), run as ONE ONNX graph by predict, evaluate, compare, serve and
export like any model. MODELs are bundle or run folders or shipped model names (resnet50,
mobilenet_v2) with the same classes in the same order and the same input size; their bundles are
copied into DIR/<name>/ as they are (float16 weights stay float16) and DIR/ensemble.json lists them.
  --out DIR              the ensemble folder to write (must not exist, or be empty)
  --tta                  test-time augmentation for every member: the image and its mirror image,
                         logits averaged per member (default: on when every member's manifest has it)
  --thresholds C=P,...   the ensemble's per-class minimum confidences, e.g. back=0.9,front=0.8,none=0.85
                         (below them the answer is 'uncertain'; the members' own are not used)
  --names A,B,...        folder names of the members in DIR (default: each model's folder name)
  --link                 refer to the members where they are (relative paths) instead of copying them
  --from-cv CV,CV,...    one cv report per member (cv.json or its folder, same order as the MODELs,
                         each member trained with 'train --from-cv' of it): the ensemble's out-of-fold
                         predictions are the mean of the members' calibrated ones; abstain thresholds
                         are fitted on them (at the reports' --max-error-rate) and DIR/cv.json gets the
                         ensemble's group cross-validation figures
`;

/** `back=0.9,front=0.8` -> { back: 0.9, front: 0.8 }. */
export function parseThresholdList(s: string, flag = '--thresholds'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of s.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    const cls = eq > 0 ? part.slice(0, eq).trim() : '';
    const p = Number(part.slice(eq + 1));
    if (cls === '' || part.slice(eq + 1).trim() === '' || !(p >= 0 && p <= 1)) {
      throw new CommandUsageError(`${flag} takes CLASS=PROBABILITY pairs (0..1) separated by commas, e.g. back=0.9,front=0.8; got '${part}'`);
    }
    out[cls] = p;
  }
  if (Object.keys(out).length === 0) throw new CommandUsageError(`${flag} needs at least one CLASS=PROBABILITY`);
  return out;
}

export async function cmdEnsemble(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let models: string[];
  let out: string;
  let tta: boolean | undefined;
  let thresholds: Record<string, number> | undefined;
  let names: string[] | undefined;
  let link = false;
  let fromCv: string[] | undefined;
  try {
    const { values: v, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        tta: { type: 'boolean' },
        thresholds: { type: 'string' },
        names: { type: 'string' },
        link: { type: 'boolean' },
        'from-cv': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (v.help) {
      io.stdout.write(ENSEMBLE_HELP);
      return 0;
    }
    if (positionals.length === 0) throw new CommandUsageError('ensemble needs its MODELs (bundle or run folders, or shipped model names)');
    if (typeof v.out !== 'string' || v.out === '') throw new CommandUsageError('ensemble needs --out DIR');
    models = positionals.map((m) => resolveModelPath(m));
    out = v.out;
    tta = v.tta ? true : undefined;
    thresholds = v.thresholds !== undefined ? parseThresholdList(v.thresholds) : undefined;
    names = v.names !== undefined ? v.names.split(',').map((n) => n.trim()) : undefined;
    if (names && names.length !== models.length) throw new CommandUsageError(`--names gives ${names.length} names for ${models.length} models`);
    link = v.link === true;
    fromCv = typeof v['from-cv'] === 'string' ? v['from-cv'].split(',').map((p) => p.trim()) : undefined;
    if (fromCv && fromCv.length !== models.length) throw new CommandUsageError(`--from-cv gives ${fromCv.length} cv reports for ${models.length} models`);
    if (fromCv && thresholds) throw new CommandUsageError('--from-cv fits the thresholds: drop --thresholds');
  } catch (err) {
    if (isUsageError(err)) return usage(io, err, 'ensemble');
    throw err;
  }
  const cv = fromCv ? await ensembleCv(models, fromCv) : undefined;
  if (cv) thresholds = cv.abstain.fit.thresholds;
  const { predictions: _p, options: _o, ...summary } = cv ?? { predictions: undefined, options: undefined };
  const r = await createEnsemble(models, out, {
    ...(tta ? { tta } : {}),
    ...(thresholds ? { thresholds } : {}),
    ...(names ? { names } : {}),
    ...(link ? { link } : {}),
    ...(cv ? { info: { groupCv: summary } } : {}),
  });
  if (cv) {
    const { reportToJSON } = await import('../eval/evaluation-report.js');
    await writeFile(join(out, 'cv.json'), reportToJSON(cv));
  }
  const m = r.manifest;
  const th = m.thresholds ? Object.entries(m.thresholds).map(([k, p]) => `${k} ${p}`).join(', ') : 'none';
  io.stdout.write(
    `wrote ${r.dir}/ensemble.json: ${m.members.join(' + ')}; classes ${m.classes.join(', ')}; tta ${m.tta ?? 'none'}; thresholds ${th}\n` +
      (cv
        ? `group cross-validation of the ensemble (from the members' out-of-fold predictions): accuracy ${(100 * cv.pooled.accuracy).toFixed(1)}%, ` +
          `worst group ${cv.pooled.worstGroup.group} ${(100 * cv.pooled.worstGroup.accuracy).toFixed(1)}%; thresholds answer ${(100 * cv.abstain.fit.coverage).toFixed(1)}% ` +
          `(${(100 * cv.abstain.crossFitted.coverage).toFixed(1)}% fitted without each group, ${(100 * cv.abstain.crossFitted.errorRate).toFixed(1)}% of those wrong); wrote ${out}/cv.json\n`
        : ''),
  );
  return 0;
}

/**
 * The ensemble's group cross-validation from its members' cv reports. Each member must store its
 * report's out-of-fold temperature (trained with 'train --from-cv'), or the averaged probabilities
 * would not be those the ensemble computes.
 */
async function ensembleCv(models: readonly string[], reports: readonly string[]): Promise<CvReport> {
  const loaded: CvReport[] = [];
  for (const [i, path] of reports.entries()) {
    const { report, path: file, tta } = await readCvReport(path); // a cv.json or its folder, checked with clear errors
    const manifest = (await loadBundle(models[i]!)).manifest;
    if (manifest.backbone.id !== report.backbone || manifest.temperature !== report.oofTemperature) {
      throw new Error(`${models[i]} is not the model of ${file} (${manifest.backbone.id}, T ${manifest.temperature} vs ${report.backbone}, T ${report.oofTemperature}): train it with 'train --from-cv ${path}'`);
    }
    if ((manifest.tta === 'hflip') !== tta) {
      throw new Error(`${models[i]}: its test-time augmentation differs from the cross-validated recipe's (${file})`);
    }
    loaded.push(report);
  }
  return combineCvReports(loaded);
}
