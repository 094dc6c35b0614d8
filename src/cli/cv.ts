/** `phoneside cv DATA_DIR --groups SPEC`: group cross-validation of a training recipe. */
import type { CvReport } from '../train/cv.js';
import { reportToJSON } from '../eval/evaluation-report.js';
import { formatGroupTable } from '../eval/group-metrics.js';
import { formatConfusionMatrix } from '../eval/report.js';
import { metricsFromConfusion } from '../eval/metrics.js';
import { CV } from '../options/train.js';
import { applyBackboneWeights, CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

export function cmdCv(args: string[], io: CliIO): Promise<number> {
  return runVerb(CV, args, io, async ({ values, positionals }) => {
    if (values.groups === undefined) throw new CommandUsageError('cv needs --groups SPEC (e.g. --groups manifest.csv:source)');
    const { parseGroupSpec } = await import('../data/groups.js');
    try {
      parseGroupSpec(values.groups);
    } catch (err) {
      throw new CommandUsageError((err as Error).message);
    }
    applyBackboneWeights(values, values.backbone ?? (CV.options.backbone.default as string));
    const { crossValidate } = await import('../train/cv.js');
    const report = await crossValidate(positionals[0]!, { ...libraryOptions(CV.options, values), progress: io.stderr });
    return printReport(report, values.json === true, io);
  });
}

function printReport(report: CvReport, json: boolean, io: CliIO): number {
  if (json) {
    io.stdout.write(reportToJSON(report));
    return 0;
  }
  const m = metricsFromConfusion(report.pooled.metrics.confusion, report.classes);
  const t = report.timings;
  io.stdout.write(
    `\n${formatGroupTable(report, report.classes)}\n\nout-of-fold confusion matrix (all ${report.pooled.images} images):\n${formatConfusionMatrix(m)}\n\n` +
      `ECE ${report.pooled.ece.toFixed(4)} with each fold's temperature (${report.eceAtT1.toFixed(4)} at T = 1); ` +
      `pooled out-of-fold temperature ${report.oofTemperature.toFixed(3)}; median best epoch ${report.medianBestEpoch}\n` +
      abstainLine(report) +
      (report.rotated ? `the same held-out photos turned 90°: accuracy ${(100 * report.rotated.accuracy).toFixed(1)}% (a model that learned 'landscape means none' fails here)\n` : '') +
      `time: features ${t.featuresSeconds.toFixed(1)} s, ${report.folds.length} folds ${t.trainSeconds.toFixed(1)} s, total ${t.totalSeconds.toFixed(1)} s\n` +
      (report.outDir ? `wrote ${report.outDir}/cv.json and ${report.outDir}/report.html\n` : ''),
  );
  return 0;
}

function abstainLine(r: CvReport): string {
  const a = r.abstain;
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const th = Object.entries(a.fit.thresholds).map(([c, t]) => `${c} ${t.toFixed(3)}`).join(', ');
  return (
    `abstain (at most ${pct(a.maxErrorRate)} wrong among answers): thresholds ${th}; answers ${pct(a.fit.coverage)} of images with ${pct(a.fit.errorRate)} wrong; ` +
    `fitted without each group and applied to it: ${pct(a.crossFitted.coverage)} answered, ${pct(a.crossFitted.errorRate)} wrong\n`
  );
}
