/**
 * The command-line parser, made from a verb's option table (src/options): flags, value parsing,
 * the same range checks as the library, deprecated aliases (accepted with a warning), and the
 * wording of the library's option errors as flags.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { env } from '../env.js';
import { flagFor, helpText } from '../options/help.js';
import {
  flagNegates,
  flagOf,
  isValid,
  OptionConflictError,
  OptionError,
  requirement,
  type CliValues,
  type OptionSpec,
  type OptionTable,
  type OptionsInput,
  type VerbSpec,
} from '../options/schema.js';
import { WeightsMissingError } from '../backbones/weights-source.js';
import { CommandUsageError, isUsageError, weightsMissingAdvice, type CliIO } from './options.js';

export interface ParsedCommandLine<T extends OptionTable> {
  values: CliValues<T>;
  positionals: string[];
  /** `--help` / `-h` was given. */
  help: boolean;
}

type ParseArgsOptions = NonNullable<ParseArgsConfig['options']>;

function parseArgsOptions(table: OptionTable): ParseArgsOptions {
  const options: ParseArgsOptions = { help: { type: 'boolean', short: 'h' } };
  for (const [key, spec] of Object.entries(table)) {
    if (spec.cli === false) continue;
    const type = spec.kind === 'boolean' ? 'boolean' : 'string';
    options[flagOf(key, spec)] = {
      type,
      ...(spec.short !== undefined ? { short: spec.short } : {}),
      ...(spec.kind === 'strings' && spec.repeatable ? { multiple: true } : {}),
    };
    for (const d of spec.deprecated ?? []) {
      if (typeof d === 'string') options[d] = { type, ...(spec.kind === 'strings' && spec.repeatable ? { multiple: true } : {}) };
      else options[d.flag] = { type: 'boolean' };
    }
  }
  return options;
}

/** A command-line string as the option's value; a CommandUsageError in flag words if it is not one. */
export function valueFromText(flag: string, spec: OptionSpec, raw: string | string[]): unknown {
  const bad = (): never => {
    throw new CommandUsageError(`--${flag} must be ${requirement(spec)}, got '${Array.isArray(raw) ? raw.join(' ') : raw}'`);
  };
  const list = (s: string): string[] =>
    s
      .split(',')
      .map((p) => p.trim())
      .filter((p) => p !== '');
  let value: unknown;
  if (Array.isArray(raw)) value = raw;
  else if (raw.trim() === '' && spec.kind !== 'numbers' && spec.kind !== 'strings') throw new CommandUsageError(`--${flag} needs a value`);
  else {
    switch (spec.kind) {
      case 'number':
      case 'integer':
        value = Number(raw);
        break;
      case 'numbers':
        value = list(raw).map(Number);
        break;
      case 'strings':
        value = list(raw);
        break;
      case 'numberMap': {
        const map: Record<string, number> = {};
        for (const part of list(raw)) {
          const eq = part.indexOf('=');
          if (eq <= 0 || part.slice(eq + 1).trim() === '') bad();
          map[part.slice(0, eq).trim()] = Number(part.slice(eq + 1));
        }
        value = map;
        break;
      }
      default:
        value = raw;
    }
  }
  if (!isValid(spec, value)) bad();
  return value;
}

/** Parses `args` for `verb`; usage mistakes throw CommandUsageError; deprecated flags warn on `io.stderr`. */
export function parseCommandLine<T extends OptionTable>(verb: VerbSpec<T>, args: string[], io: CliIO): ParsedCommandLine<T> {
  const { values: raw, positionals } = parseArgs({ args, allowPositionals: true, strict: true, options: parseArgsOptions(verb.options) });
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(verb.options)) {
    if (spec.cli === false) continue;
    const flag = flagOf(key, spec);
    let given = raw[flag];
    let givenAs = flag;
    for (const d of spec.deprecated ?? []) {
      const old = typeof d === 'string' ? d : d.flag;
      if (raw[old] === undefined) continue;
      io.stderr.write(`phoneside: warning: --${old} is deprecated and will be removed; use ${typeof d === 'string' ? `--${flag}` : `--${flag} ${d.value}`}\n`);
      if (given !== undefined) throw new CommandUsageError(`--${old} and --${flag} say the same thing: give one`);
      given = typeof d === 'string' ? raw[old] : d.value;
      givenAs = old;
    }
    if (given === undefined) {
      if (spec.cli === 'only' && spec.default !== undefined) values[key] = spec.default;
      continue;
    }
    if (spec.kind === 'boolean') values[key] = !flagNegates(key, spec);
    else values[key] = valueFromText(givenAs, spec, given as string | string[]);
  }
  const help = raw['help'] === true;
  if (!help) {
    const { min, max } = verb.positionals;
    if (positionals.length < min || positionals.length > max) {
      const what = max === 0 ? 'no arguments' : min === max ? `exactly ${min} ${verb.positionals.name}` : max === Infinity ? `at least ${min} ${verb.positionals.name}` : `${min} to ${max} arguments`;
      throw new CommandUsageError(`${verb.name} takes ${what} (got ${positionals.length === 0 ? 'none' : positionals.join(' ')}): phoneside ${verb.name} ${verb.usage}`);
    }
  }
  return { values: values as CliValues<T>, positionals, help };
}

/** The library's options from parsed values: the CLI-only ones dropped, absent ones left to the library's defaults. */
export function libraryOptions<T extends OptionTable>(table: T, values: CliValues<T>): OptionsInput<T> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(values)) if (v !== undefined && table[key]?.cli !== 'only') out[key] = v;
  return out as OptionsInput<T>;
}

/** A library option error in command-line words (`--batch-size must be ...`), or undefined if `err` is not one. */
export function inCliWords(err: unknown, table: OptionTable): CommandUsageError | undefined {
  if (err instanceof OptionError) {
    const shown = typeof err.value === 'string' ? `'${err.value}'` : Array.isArray(err.value) ? `'${err.value.join(',')}'` : `'${String(err.value)}'`;
    return new CommandUsageError(`${flagFor(table, err.option)} must be ${err.requirement}, got ${shown}`);
  }
  if (err instanceof OptionConflictError) return new CommandUsageError(err.reword((key) => flagFor(table, key)));
  return undefined;
}

/** Sets the shared `env` from `--cache-dir` and `--offline`. */
export function applyEnv(values: { cacheDir?: string; offline?: boolean }): void {
  if (values.cacheDir !== undefined) env.cacheDir = values.cacheDir;
  if (values.offline === true) env.offline = true;
}

/**
 * Runs one verb: parses `args` by its table, answers `--help` from it, applies the `env` options,
 * then runs `body`. Usage mistakes (the parser's, and the library's option errors in flag words)
 * are reported on `io.stderr` with exit status 2; missing weights with what to do, status 1.
 */
export async function runVerb<T extends OptionTable>(
  verb: VerbSpec<T>,
  args: string[],
  io: CliIO,
  body: (parsed: ParsedCommandLine<T>) => Promise<number> | number,
): Promise<number> {
  try {
    const parsed = parseCommandLine(verb, args, io);
    if (parsed.help) {
      io.stdout.write(helpText(verb));
      return 0;
    }
    applyEnv(parsed.values as { cacheDir?: string; offline?: boolean });
    return await body(parsed);
  } catch (err) {
    const usage = inCliWords(err, verb.options) ?? (isUsageError(err) ? err : undefined);
    if (usage !== undefined) {
      io.stderr.write(`phoneside: ${usage.message}\nRun 'phoneside ${verb.name} --help' for usage.\n`);
      return 2;
    }
    if (err instanceof WeightsMissingError) {
      io.stderr.write(`phoneside: ${err.message}\n${weightsMissingAdvice(err)}\n`);
      return 1;
    }
    throw err;
  }
}
