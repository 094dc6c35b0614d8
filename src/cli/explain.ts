/**
 * `phoneside explain [--model M] IMAGE... --out DIR`: writes a heat-map PNG per image (and class
 * with --all-classes) and prints one line per image: path, label, confidence, method, files. A
 * file that cannot be read or decoded, or whose PNG is already there, gets an error line; the
 * others go on. Inference only (ONNX Runtime), like predict.
 */
import { mkdir } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { readImageFile } from '../data/image.js';
import { explainEach, heatmapOverlayPng, type ExplainInput, type Explanation } from '../explain/explain.js';
import { Classifier } from '../infer/classifier.js';
import { expandInputs } from '../infer/inputs.js';
import { errorReason } from '../infer/predict.js';
import { EXPLAIN } from '../options/explain.js';
import { isFile, writeFileAtomic } from '../util/fs.js';
import { displayPath, escapeControl, type FsPath } from '../util/list-dir.js';
import { ProgressBar } from '../util/progress.js';
import { applyModelWeights, CommandUsageError, type CliIO } from './options.js';
import { runVerb } from './parse.js';

/** One image's outcome, as printed (and as a --json line). */
interface ExplainRow {
  path: string;
  label: string | null;
  predicted: string | null;
  confidence: number | null;
  method: string | null;
  files: string[];
  error?: string;
}

/** A file-name stem safe on every file system: letters, digits, '.', '-', '_' kept. */
const safeStem = (s: string): string => s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_') || '_';

/** Stems for the images' PNGs: the file name without extension, made unique with -2, -3... */
function stemsFor(paths: readonly string[]): string[] {
  const used = new Set<string>();
  return paths.map((p) => {
    const base = safeStem(basename(p, extname(p)));
    let stem = base;
    for (let i = 2; used.has(stem.toLowerCase()); i++) stem = `${base}-${i}`;
    used.add(stem.toLowerCase());
    return stem;
  });
}

/** A path as explainEach takes it: the string itself, or the file's bytes for a name that is not UTF-8. */
async function asInput(path: FsPath): Promise<string | ExplainInput> {
  if (typeof path === 'string') return path;
  return { path: displayPath(path), bytes: await readImageFile(path) };
}

function textLine(r: ExplainRow): string {
  const path = escapeControl(r.path);
  if (r.error !== undefined) return `${path}  error: ${r.error}`;
  return `${path}  ${r.label}  ${r.confidence!.toFixed(3)}  ${r.method}  ${r.files.join(', ')}`;
}

function jsonLine(r: ExplainRow): string {
  return JSON.stringify({ ...r, confidence: r.confidence === null ? null : Number(r.confidence.toFixed(6)) });
}

export function cmdExplain(args: string[], io: CliIO): Promise<number> {
  return runVerb(EXPLAIN, args, io, async ({ values, positionals }) => {
    if (values.out === undefined) throw new CommandUsageError('explain needs --out DIR (the folder for the PNG files)');
    const outDir = values.out;
    const { files, problems } = await expandInputs(positionals);
    if (files.length === 0 && problems.length === 0) throw new CommandUsageError(`no image files found in ${escapeControl(positionals.join(' '))}`);
    await applyModelWeights(values.weights, [values.model]);
    const clf = await Classifier.load(values.model, {
      ...(values.tta !== undefined ? { tta: values.tta } : {}),
      ...(values.threads !== undefined ? { threads: values.threads } : {}),
    });
    try {
      await mkdir(outDir, { recursive: true });
      const rows: ExplainRow[] = [];
      const bar = files.length > 5 && io.stderr.isTTY ? new ProgressBar({ total: files.length, label: 'explain', stream: io.stderr, unit: 'img' }) : undefined;
      const print = (r: ExplainRow): void => {
        rows.push(r);
        if (bar && io.stdout.isTTY) io.stderr.write('\r\x1b[K');
        io.stdout.write((values.json === true ? jsonLine(r) : textLine(r)) + '\n');
      };
      const failed = (path: string, error: string): ExplainRow => ({ path, label: null, predicted: null, confidence: null, method: null, files: [], error });
      for (const p of problems) print(failed(p.path, p.error));

      const inputs: (string | ExplainInput)[] = [];
      for (const f of files) {
        try {
          inputs.push(await asInput(f));
        } catch (err) {
          print(failed(displayPath(f), errorReason(err instanceof Error ? err : new Error(String(err)))));
        }
      }
      const stems = stemsFor(inputs.map((i) => (typeof i === 'string' ? i : i.path)));
      let index = 0;
      const options = {
        classes: values.allClasses ? ('all' as const) : ('predicted' as const),
        method: values.method ?? 'auto',
        ...(values.threads !== undefined ? { threads: values.threads } : {}),
      };
      for await (const e of explainEach(clf, inputs, options)) {
        const input = inputs[index]!;
        const stem = stems[index++]!;
        print(e.error !== undefined ? failed(e.path, e.error) : await writeMaps(e, typeof input === 'string' ? input : input.bytes, stem));
        bar?.update(index);
      }
      bar?.done();

      async function writeMaps(e: Explanation, source: string | Uint8Array, stem: string): Promise<ExplainRow> {
        const targets = e.maps.map((m) => join(outDir, `${stem}.${safeStem(m.class)}.png`));
        if (values.overwrite !== true) {
          for (const t of targets) if (await isFile(t)) return failed(e.path, `${t} exists (use --overwrite to replace it)`);
        }
        try {
          for (const [i, m] of e.maps.entries()) {
            const png = await heatmapOverlayPng(source, m, { ...(values.size !== undefined ? { size: values.size } : {}), resize: clf.preprocessing.resize });
            await writeFileAtomic(targets[i]!, png);
          }
        } catch (err) {
          return failed(e.path, errorReason(err instanceof Error ? err : new Error(String(err))));
        }
        const p = e.prediction;
        return { path: e.path, label: p.label, predicted: p.predicted, confidence: p.confidence, method: e.method, files: targets };
      }
      return rows.some((r) => r.error !== undefined) ? 1 : 0;
    } finally {
      await clf.dispose();
    }
  });
}
