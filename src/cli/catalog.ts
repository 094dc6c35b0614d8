/**
 * `phoneside catalog SRC... --out FILE.jsonl`: a thin shell over the library's catalog()
 * (src/catalog/catalog.ts): progress bar with rate and ETA on stderr, files that could not be
 * read listed on stderr, a summary at the end (text, or JSON with --json).
 */
import { catalog, CatalogInputError, type CatalogSummary } from '../catalog/catalog.js';
import { escapeControl } from '../util/list-dir.js';
import { CATALOG } from '../options/catalog.js';
import { formatDuration, ProgressBar } from '../util/progress.js';
import { applyModelWeights, CommandUsageError, type CliIO } from './options.js';
import { libraryOptions, runVerb } from './parse.js';

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The summary as text: what was found, done and skipped, the rate, and what --out now holds. */
export function catalogSummaryText(s: CatalogSummary): string {
  const labels = Object.entries(s.labels)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const lines = [
    `${plural(s.files, 'image file')} found: ${s.classified} classified (${labels}; ${plural(s.errors, 'error')}), ${s.alreadyDone} already in ${s.out}, ${plural(s.duplicates, 'duplicate')}, ${s.unreadable} unreadable`,
    `${s.imagesPerSecond.toFixed(1)} img/s over ${formatDuration(s.seconds)}; ${s.out} holds ${plural(s.records, 'record')} (model ${s.model.id} ${s.model.version})`,
  ];
  if (s.placed > 0 || s.moved > 0) lines.push(`sorted: ${s.placed} placed${s.moved > 0 ? `, ${s.moved} sources removed (--move)` : ''}`);
  if (s.tornLines > 0) lines.push(`a torn last line (a run killed mid-write) was cut off ${s.out} and redone`);
  if (s.unreadable > 0) lines.push(`${plural(s.unreadable, 'file')} could not be read and ${s.unreadable === 1 ? 'has' : 'have'} no record: run again to retry`);
  return `${lines.join('\n')}\n`;
}

/** --copy / --link / --move: at most one, and only with --sort-into. */
function placementOf(values: { copy?: boolean; link?: boolean; move?: boolean; sortInto?: string }): 'copy' | 'link' | 'move' | undefined {
  const given = (['copy', 'link', 'move'] as const).filter((k) => values[k] === true);
  if (given.length > 1) throw new CommandUsageError(`${given.map((g) => `--${g}`).join(' and ')}: give one`);
  if (given.length === 1 && values.sortInto === undefined) throw new CommandUsageError(`--${given[0]} needs --sort-into DIR`);
  return given[0];
}

export function cmdCatalog(args: string[], io: CliIO): Promise<number> {
  return runVerb(CATALOG, args, io, async ({ values, positionals: sources }) => {
    if (values.out === undefined) throw new CommandUsageError('catalog needs --out FILE: the JSON-lines file to write or resume');
    const placement = placementOf(values);
    await applyModelWeights(values.weights, [values.model]);
    const quiet = values.quiet === true;
    let bar: ProgressBar | undefined;
    let summary: CatalogSummary;
    try {
      summary = await catalog(sources, {
        ...libraryOptions(CATALOG.options, values),
        ...(placement !== undefined ? { placement } : {}),
        onProblem: (path, reason) => {
          if (bar !== undefined && io.stderr.isTTY) io.stderr.write('\r\x1b[K');
          io.stderr.write(`phoneside: ${escapeControl(path)}: ${reason}\n`);
        },
        onNote: (message) => io.stderr.write(`phoneside: note: ${message}\n`),
        ...(quiet
          ? {}
          : {
              onProgress: (p) => {
                bar ??= new ProgressBar({ total: p.total, label: 'catalog', stream: io.stderr, unit: 'img' });
                bar.update(p.files, `${p.classified} new`);
              },
            }),
      });
    } catch (err) {
      if (err instanceof CatalogInputError) throw new CommandUsageError(err.message);
      throw err;
    }
    bar?.done();
    if (values.json === true) io.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    else if (!quiet) io.stdout.write(catalogSummaryText(summary));
    return summary.unreadable > 0 ? 1 : 0;
  });
}
