/**
 * `phoneside compare MODEL... --data DIR`: models side by side on the same images, as a terminal
 * table, JSON (--json) or a self-contained HTML page (--html).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compareModels } from '../eval/compare.js';
import { formatComparisonTable } from '../eval/compare-format.js';
import { reportToJSON } from '../eval/evaluation-report.js';
import { COMPARE } from '../options/infer.js';
import { applyModelWeights, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

export function cmdCompare(args: string[], io: CliIO): Promise<number> {
  return runVerb(COMPARE, args, io, async ({ values, positionals }) => {
    const models = [...positionals, ...(values.model ?? [])];
    await applyModelWeights(values.weights, models);
    const report = await compareModels(models, { ...libraryOptions(COMPARE.options, values), progress: io.stderr });
    const dataDir = report.data.dir;
    if (values.html !== undefined) {
      const { makeThumbnails } = await import('../eval/thumbnails.js');
      const { renderComparisonHtml } = await import('../eval/html/compare-page.js');
      const thumbnails = await makeThumbnails(report.agreement.allWrong.map((p) => ({ key: p, file: join(dataDir, p) })));
      await writeFile(values.html, renderComparisonHtml(report, { thumbnails }));
      io.stderr.write(`wrote ${values.html}\n`);
    }
    if (values.json) {
      const { reports: _full, ...summary } = report;
      io.stdout.write(reportToJSON(summary));
    } else {
      io.stdout.write(formatComparisonTable(report));
    }
    return 0;
  });
}
