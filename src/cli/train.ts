/** `phoneside train DATA_DIR [options]`: a thin shell over the library's `train()`. */
import { reportToJSON } from '../eval/evaluation-report.js';
import { formatClassificationReport, formatConfusionMatrix, metricsToJSON } from '../eval/report.js';
import { TRAIN } from '../options/train.js';
import { applyBackboneWeights, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

export function cmdTrain(args: string[], io: CliIO): Promise<number> {
  return runVerb(TRAIN, args, io, async ({ values, positionals }) => {
    applyBackboneWeights(values, values.backbone ?? (TRAIN.options.backbone.default as string));
    const { train } = await import('../train/train.js');
    const result = await train(positionals[0]!, { ...libraryOptions(TRAIN.options, values), progress: io.stderr });
    const t = result.timings;
    const ev = result.evaluation;
    if (values.json) {
      io.stdout.write(
        reportToJSON({
          schema: 'phoneside.train-result/1',
          runDir: result.runDir,
          bestEpoch: result.bestEpoch,
          validation: ev ? metricsToJSON(ev) : null,
          calibration: result.calibration,
          timings: t,
          skipped: result.skipped,
          nearDuplicates: result.nearDuplicates,
        }),
      );
      return 0;
    }
    io.stdout.write(
      (ev ? `\n${formatConfusionMatrix(ev)}\n\n${formatClassificationReport(ev, 4)}\n` : '\nno validation split (trained on all images)\n') +
        `best epoch ${result.bestEpoch} of ${t.epochs}; time: decode+augment ${t.decodeSeconds.toFixed(1)}s, ` +
        `trunk ${t.trunkSeconds.toFixed(1)}s (${t.featureViewsComputed} views computed, ${t.featureViewsCached} cached), ` +
        `training ${t.trainSeconds.toFixed(1)}s (${t.secondsPerEpoch.toFixed(1)}s/epoch), total ${t.totalSeconds.toFixed(1)}s\n` +
        (ev
          ? `calibration: temperature ${result.calibration.temperature.toFixed(3)}, ECE ${result.calibration.eceBefore.toFixed(4)} -> ${result.calibration.eceAfter.toFixed(4)}\n`
          : `temperature ${result.calibration.temperature} (given, not fitted)\n`) +
        `run folder: ${result.runDir}${ev ? ` (report: ${result.runDir}/report.html)` : ''}\n`,
    );
    return 0;
  });
}
