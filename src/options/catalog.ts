/** The options of `catalog`: resumable batch classification into a JSON-lines file. */
import { ENV_OPTIONS, JSON_OPTION, MODEL_OPTION, PRECISION_OPTIONS, THREADS_OPTION, TTA_OPTION } from './common.js';
import { DECISION_OPTIONS } from './infer.js';
import { defineVerb, type OptionsInput, type ResolvedOptions } from './schema.js';

export const CATALOG = defineVerb({
  name: 'catalog',
  usage: 'SRC... --out FILE.jsonl [options]',
  summary: 'classify a large collection into a JSON-lines file, resumably (--sort-into DIR)',
  description:
    'Walks the SRC folders (recursively; files are taken as given) and appends one JSON line per distinct image to --out: path, sha256 of its bytes, label (or uncertain), predicted, confidence, probabilities, model id and version, or error. Resumable: a rerun skips every image whose content is already in --out (a renamed or copied file too), and a second file with the same content as one already done is counted as a duplicate, not classified again. Lines are written and fsynced in batches, so killing a run loses at most the batch in flight; the torn line it may leave is cut off and redone on the next run. Images that cannot be decoded get a record with their error and are not retried; files that cannot be read (permission denied, vanished) get no record and are retried by the next run.',
  footer:
    'Exit status: 0 when every file found is in --out (classified, or recorded with its error), 1 when some file could not be read (rerun to retry it) or on failure, 2 for usage errors. See docs/catalog.md.',
  positionals: { min: 1, max: Infinity, name: 'SRC' },
  options: {
    out: { kind: 'string', short: 'o', placeholder: 'FILE', help: 'the JSON-lines file to write or resume (required; its folder must exist)' },
    ...MODEL_OPTION,
    include: { kind: 'strings', repeatable: true, placeholder: 'GLOB', help: 'only files whose path below SRC matches (repeatable; a pattern without / matches the name at any depth: *, ?, **, [abc], {a,b})' },
    exclude: { kind: 'strings', repeatable: true, placeholder: 'GLOB', help: 'leave out files and folders whose path below SRC matches (repeatable; same patterns as --include)' },
    sortInto: {
      kind: 'string',
      placeholder: 'DIR',
      help: 'also place each classified image in DIR/<label>/ (front, back, none, uncertain; failed images are not placed), never overwriting: a name clash gets a -1, -2 ... suffix',
    },
    placement: { kind: 'choice', choices: ['copy', 'link', 'move'], default: 'copy', cli: false, help: 'how --sort-into places an image' },
    copy: { kind: 'boolean', cli: 'only', help: 'with --sort-into: copy each image (the default)' },
    link: { kind: 'boolean', cli: 'only', help: 'with --sort-into: hard-link each image (copied, with a note, across file systems)' },
    move: { kind: 'boolean', cli: 'only', help: 'with --sort-into: move each image; the source is removed only after its copy and its record are on disk' },
    ...DECISION_OPTIONS,
    batchSize: { kind: 'integer', min: 1, default: 16, help: 'images per inference call' },
    syncEvery: { kind: 'integer', min: 1, default: 64, help: 'records per write + fsync of --out (also written every 2 s): at most this many are redone after a kill' },
    ...TTA_OPTION,
    ...THREADS_OPTION,
    ...PRECISION_OPTIONS,
    quiet: { kind: 'boolean', short: 'q', cli: 'only', help: 'no progress bar and no summary' },
    ...JSON_OPTION,
    ...ENV_OPTIONS,
  },
});

export type CatalogInput = OptionsInput<typeof CATALOG.options>;
export type CatalogSettings = ResolvedOptions<typeof CATALOG.options>;
