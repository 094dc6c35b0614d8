/**
 * `phoneside ensemble MODEL MODEL... --out DIR`: several trained models as one (see
 * infer/ensemble.ts): copies the member bundles into DIR/<name>/ and writes DIR/ensemble.json.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { combineCvReports } from '../eval/cv-ensemble.js';
import { CV_FILES, readCvReport, type CvReport } from '../eval/cv-report.js';
import { loadBundle } from '../model/bundle.js';
import { createEnsemble, type CreatedEnsemble } from '../infer/ensemble.js';
import { resolveModelPath } from '../infer/load.js';
import { ENSEMBLE } from '../options/infer.js';
import { CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

export function cmdEnsemble(args: string[], io: CliIO): Promise<number> {
  return runVerb(ENSEMBLE, args, io, async ({ values, positionals }) => {
    const models = [...positionals, ...(values.model ?? [])].map((m) => resolveModelPath(m));
    const { fromCv } = values;
    if (fromCv && fromCv.length !== models.length) throw new CommandUsageError(`--from-cv gives ${fromCv.length} cv reports for ${models.length} models`);
    if (fromCv && values.thresholds) throw new CommandUsageError('--from-cv fits the thresholds: drop --thresholds');
    const cv = fromCv ? await ensembleCv(models, fromCv) : undefined;
    const { predictions: _p, options: _o, ...summary } = cv ?? { predictions: undefined, options: undefined };
    const r = await createEnsemble(models, {
      ...libraryOptions(ENSEMBLE.options, values),
      ...(cv ? { thresholds: cv.abstain.fit.thresholds, info: { groupCv: summary } } : {}),
    });
    if (cv) {
      const { reportToJSON } = await import('../eval/evaluation-report.js');
      await writeFile(join(r.dir, CV_FILES.report), reportToJSON(cv));
    }
    io.stdout.write(ensembleSummary(r, cv));
    return 0;
  });
}

function ensembleSummary(r: CreatedEnsemble, cv: CvReport | undefined): string {
  const m = r.manifest;
  const th = m.thresholds ? Object.entries(m.thresholds).map(([k, p]) => `${k} ${p}`).join(', ') : 'none';
  return (
    `wrote ${r.dir}/ensemble.json: ${m.members.join(' + ')}; classes ${m.classes.join(', ')}; tta ${m.tta ?? 'none'}; thresholds ${th}\n` +
      (cv
        ? `group cross-validation of the ensemble (from the members' out-of-fold predictions): accuracy ${(100 * cv.pooled.accuracy).toFixed(1)}%, ` +
          `worst group ${cv.pooled.worstGroup.group} ${(100 * cv.pooled.worstGroup.accuracy).toFixed(1)}%; thresholds answer ${(100 * cv.abstain.fit.coverage).toFixed(1)}% ` +
          `(${(100 * cv.abstain.crossFitted.coverage).toFixed(1)}% fitted without each group, ${(100 * cv.abstain.crossFitted.errorRate).toFixed(1)}% of those wrong); wrote ${join(r.dir, CV_FILES.report)}\n`
        : '')
  );
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
