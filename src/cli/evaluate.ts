/** `phoneside evaluate [--model MODEL] DATA_DIR`: a model's confusion matrix and report on labelled images. */
import { evaluate, evaluationReport } from '../eval/evaluate.js';
import { reportToJSON } from '../eval/evaluation-report.js';
import { formatClassificationReport, formatConfusionMatrix } from '../eval/report.js';
import { EVALUATE } from '../options/infer.js';
import { definedOnly } from '../util/defined.js';
import { join } from 'node:path';
import { applyModelWeights, CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

export function cmdEvaluate(args: string[], io: CliIO): Promise<number> {
  return runVerb(EVALUATE, args, io, async ({ values, positionals }) => {
    // The older form `evaluate MODEL DATA_DIR` still works.
    if (positionals.length === 2 && values.model !== undefined) throw new CommandUsageError('give the model once: --model MODEL or evaluate MODEL DATA_DIR');
    const model = positionals.length === 2 ? positionals[0] : values.model;
    const dataDir = positionals[positionals.length - 1]!;
    await applyModelWeights(values.weights, [model]);
    const r = await evaluate(dataDir, { ...libraryOptions(EVALUATE.options, values), ...(model !== undefined ? { model } : {}), progress: io.stderr });
    for (const s of r.skipped) io.stderr.write(`warning: skipped ${s.path}: ${s.reason}\n`);
    const report = await evaluationReport(r);
    if (values.html !== undefined) {
      const { writeEvaluationHtml } = await import('../eval/html-report.js');
      const shown = values.heatmaps ? report.mistakes.slice(0, values.galleryLimit) : [];
      let heatmaps;
      if (shown.length > 0) {
        io.stderr.write(`heat maps of ${shown.length} mistakes...\n`);
        // The model is loaded again: evaluate() keeps no session.
        const { heatmapsOfModel } = await import('../explain/report-heatmaps.js');
        heatmaps = await heatmapsOfModel(model, shown.map((m) => ({ key: m.path, file: join(dataDir, m.path) })), definedOnly(values, ['tta', 'threads']));
      }
      await writeEvaluationHtml(values.html, report, { dataDir, galleryLimit: values.galleryLimit, ...(heatmaps !== undefined ? { heatmaps } : {}) });
      io.stderr.write(`wrote ${values.html}\n`);
    }
    if (values.json) {
      io.stdout.write(reportToJSON({ ...report, seconds: r.seconds }));
      return 0;
    }
    io.stdout.write(
      `${formatConfusionMatrix(r.metrics)}\n\n${formatClassificationReport(r.metrics, values.digits)}\n` +
        `ECE ${report.calibration.after.ece.toFixed(4)} (T = ${report.calibration.temperature.toFixed(3)}; ${report.calibration.before.ece.toFixed(4)} at T = 1), ` +
        `macro AP ${report.macroAveragePrecision?.toFixed(4) ?? '-'}, ${report.mistakes.length} mistakes, ${r.seconds.toFixed(1)} s\n`,
    );
    return 0;
  });
}
