/**
 * The `phoneside` command: one verb per mode, a thin shell over the library. Every verb's options
 * come from its table in src/options (the library's own names, kebab-case here); usage mistakes
 * exit 2, failures 1.
 */
import { listBackbones } from '../backbones/registry.js';
import { VERBS, BACKBONES, verbByName } from '../options/index.js';
import { helpText } from '../options/help.js';
import { cmdCompare } from './compare.js';
import { cmdCv } from './cv.js';
import { cmdEnsemble } from './ensemble.js';
import { cmdEvaluate } from './evaluate.js';
import { cmdExplain } from './explain.js';
import { cmdExport } from './export.js';
import { cmdModels } from './models.js';
import { CommandUsageError, isUsageError, type CliIO } from './options.js';
import { runVerb } from './parse.js';
import { cmdPredict } from './predict.js';
import { cmdReview } from './review.js';
import { cmdCatalog } from './catalog.js';
import { cmdServe } from './serve.js';
import { cmdTrain } from './train.js';

type Command = (args: string[], io: CliIO) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  train: cmdTrain,
  cv: cmdCv,
  evaluate: cmdEvaluate,
  predict: cmdPredict,
  explain: cmdExplain,
  review: cmdReview,
  catalog: cmdCatalog,
  export: cmdExport,
  compare: cmdCompare,
  ensemble: cmdEnsemble,
  serve: cmdServe,
  // Loaded when used: BullMQ and ioredis cost every other verb ~0.2 s to import.
  queue: async (args, io) => (await import('./queue.js')).cmdQueue(args, io),
  worker: async (args, io) => (await import('./worker.js')).cmdWorker(args, io),
  models: cmdModels,
  backbones: cmdBackbones,
};

function overview(): string {
  const width = Math.max(10, ...VERBS.map((v) => v.name.length));
  const lines = VERBS.map((v) => `  phoneside ${v.name.padEnd(width)} ${v.summary}`);
  return (
    `phoneside — is this photo the front of a phone, its back, or neither?\n\nUsage:\n${lines.join('\n')}\n  phoneside help [COMMAND]\n\n` +
    `'phoneside COMMAND --help' lists a command's options; the same names (camelCase) are the library's options.\n` +
    `Weights and cache: --weights [ID=]PATH, --cache-dir DIR, --offline (env PHONESIDE_WEIGHTS_<ID>, PHONESIDE_CACHE_DIR, PHONESIDE_OFFLINE=1).\n`
  );
}

function cmdBackbones(args: string[], io: CliIO): Promise<number> {
  return runVerb(BACKBONES, args, io, () => {
    for (const b of listBackbones()) {
      const p = b.preprocessing;
      io.stdout.write(
        `${b.id.padEnd(20)} ${b.displayName}; input ${p.size}x${p.size} ${p.channelOrder}, mean ${p.mean.join('/')}, std ${p.std.join('/')}; ` +
          `top blocks ${b.topBlockNames.join(', ')} (default ${b.defaultTopBlocks})\n`,
      );
    }
    return 0;
  });
}

const PROCESS_IO: CliIO = { stdout: process.stdout, stderr: process.stderr };

/** Runs the CLI; returns the exit status. Output goes to `io` (tests pass fakes). */
export async function main(argv: string[], io: CliIO = PROCESS_IO): Promise<number> {
  const [verb, ...rest] = argv;
  try {
    if (verb === undefined || verb === 'help' || verb === '--help' || verb === '-h') {
      const spec = verbByName(rest.slice(0, 2).join(' ')) ?? verbByName(rest[0] ?? '');
      io.stdout.write(spec ? helpText(spec) : rest[0] === 'queue' ? (await import('./queue.js')).queueHelp() : overview());
      return 0;
    }
    const command = COMMANDS[verb];
    if (command === undefined) throw new CommandUsageError(`unknown command '${verb}'`);
    return await command(rest, io);
  } catch (err) {
    // Each verb reports its own usage mistakes (runVerb); what is left is an unknown verb or a failure.
    if (isUsageError(err)) {
      io.stderr.write(`phoneside: ${err.message}\nRun 'phoneside help' for usage.\n`);
      return 2;
    }
    io.stderr.write(`phoneside: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env['PHONESIDE_DEBUG'] && err instanceof Error) io.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
