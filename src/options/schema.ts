/**
 * Declarative option tables. Each verb's options are written once, as data (name, kind, range,
 * default, help); from that one table come the library's TypeScript option types, its defaults,
 * its range checks (`resolveOptions`, called by the library so library users get them too), the
 * command-line parser (src/cli/parse.ts), the help text and the README tables. Light on purpose:
 * nothing here imports Node-only or heavy modules.
 */

interface BaseSpec {
  /** One or more sentences; the first line of help and README. */
  help: string;
  /** Heading the option is listed under in help (e.g. 'Model', 'Data'). */
  group?: string;
  /** The value's name in help, e.g. 'N', 'DIR' (default from the kind). */
  placeholder?: string;
  /** One-letter CLI alias. */
  short?: string;
  /** The CLI flag when it is not the key in kebab-case. */
  flag?: string;
  /** The CLI flag means the opposite of the option (e.g. `--quiet` for `verbose`). */
  inverted?: boolean;
  /**
   * Old CLI flags still accepted for one release, with a warning: a flag taking the same value,
   * or a boolean flag that stands for one value of this option (`--no-augment` = `--augment none`).
   */
  deprecated?: readonly (string | { flag: string; value: string })[];
  /** 'only': a CLI option the library does not take (output format...); false: library only. */
  cli?: 'only' | false;
  /** What the default is when it is computed, not fixed (e.g. 'per backbone'). */
  defaultText?: string;
  /** Environment variable that also sets it (shown in help). */
  envVar?: string;
}

export interface NumberSpec extends BaseSpec {
  kind: 'number' | 'integer';
  default?: number;
  min?: number;
  max?: number;
  /** The bounds themselves are not allowed. */
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
}

export interface StringSpec extends BaseSpec {
  kind: 'string';
  default?: string;
}

export interface BooleanSpec extends BaseSpec {
  kind: 'boolean';
  default?: boolean;
}

export interface ChoiceSpec extends BaseSpec {
  kind: 'choice';
  choices: readonly string[];
  default?: string;
}

/** Comma-separated on the command line (`--head-units 512,128`), or repeated when `repeatable`. */
export interface ListSpec extends BaseSpec {
  kind: 'numbers' | 'strings';
  /** Exact number of items. */
  length?: number;
  /** Every item an integer >= min (numbers). */
  integer?: boolean;
  min?: number;
  /** The flag is given once per item instead of comma-separated. */
  repeatable?: boolean;
  default?: readonly number[] | readonly string[];
}

/** `KEY=NUMBER` pairs, comma-separated on the command line (`back=0.9,front=0.8`). */
export interface NumberMapSpec extends BaseSpec {
  kind: 'numberMap';
  min?: number;
  max?: number;
  default?: Readonly<Record<string, number>>;
}

export type OptionSpec = NumberSpec | StringSpec | BooleanSpec | ChoiceSpec | ListSpec | NumberMapSpec;
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** The TypeScript value of one option. */
export type ValueOf<S> = S extends { kind: 'number' | 'integer' }
  ? number
  : S extends { kind: 'string' }
    ? string
    : S extends { kind: 'boolean' }
      ? boolean
      : S extends { kind: 'choice'; choices: readonly (infer C)[] }
        ? C
        : S extends { kind: 'numbers'; length: 2 }
          ? [number, number]
          : S extends { kind: 'numbers' }
          ? number[]
          : S extends { kind: 'strings' }
            ? string[]
            : S extends { kind: 'numberMap' }
              ? Record<string, number>
              : never;

type LibraryKeys<T> = { [K in keyof T]: T[K] extends { cli: 'only' } ? never : K }[keyof T];
type WithDefault<T> = { [K in keyof T]: T[K] extends { default: unknown } ? K : never }[keyof T];

/** What a library caller may pass: every library option, all optional. */
export type OptionsInput<T> = { [K in LibraryKeys<T>]?: ValueOf<T[K]> };

/** After `resolveOptions`: options with a default are present, the rest optional. */
export type ResolvedOptions<T> = { [K in Extract<LibraryKeys<T>, WithDefault<T>>]: ValueOf<T[K]> } & {
  [K in Exclude<LibraryKeys<T>, WithDefault<T>>]?: ValueOf<T[K]>;
};

/**
 * What the command line gives: every option it can set, optional, except CLI-only options with a
 * default, which the parser fills in (the library fills in its own).
 */
export type CliValues<T> = { [K in keyof T as T[K] extends { cli: false } ? never : K]?: ValueOf<T[K]> } & {
  [K in keyof T as T[K] extends { cli: 'only'; default: unknown } ? K : never]: ValueOf<T[K]>;
};

/** An option value outside its range or of the wrong type; `option` is the library's (camelCase) name. */
export class OptionError extends RangeError {
  override readonly name: string = 'OptionError';
  constructor(
    readonly option: string,
    /** E.g. 'an integer >= 2'. */
    readonly requirement: string,
    readonly value: unknown,
  ) {
    super(`option ${option} must be ${requirement}, got ${show(value)}`);
  }
}

/** Options that make no sense together, or one missing that another needs. */
export class OptionConflictError extends RangeError {
  override readonly name: string = 'OptionConflictError';
  constructor(
    /** The library names involved, in the order `render` takes them. */
    readonly options: readonly string[],
    private readonly render: (names: readonly string[]) => string,
  ) {
    super(render(options));
  }

  /** The message with the options named another way (the CLI's flags). */
  reword(nameOf: (option: string) => string): string {
    return this.render(this.options.map(nameOf));
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (Array.isArray(v)) return `[${v.map(show).join(', ')}]`;
  return String(v);
}

/** 'an integer >= 2', 'a number in (0, 1)', 'one of adam, adamw' ... */
export function requirement(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'number':
    case 'integer':
      return numberRequirement(spec.kind === 'integer' ? 'an integer' : 'a number', spec.min, spec.max, spec.exclusiveMin, spec.exclusiveMax);
    case 'string':
      return 'a non-empty string';
    case 'boolean':
      return 'true or false';
    case 'choice':
      return `one of ${spec.choices.join(', ')}`;
    case 'numbers': {
      const item = numberRequirement(spec.integer ? 'integers' : 'numbers', spec.min, undefined, false, false).replace(/^an? /, '');
      return spec.length !== undefined ? `${spec.length} ${item}` : `a list of ${item}`;
    }
    case 'strings':
      return spec.length !== undefined ? `${spec.length} non-empty strings` : 'a list of non-empty strings';
    case 'numberMap':
      return `NAME=NUMBER pairs with numbers ${numberRequirement('', spec.min, spec.max, false, false).trim()}`.trimEnd();
  }
}

function numberRequirement(what: string, min?: number, max?: number, xmin?: boolean, xmax?: boolean): string {
  if (min !== undefined && max !== undefined) return `${what} in ${xmin ? '(' : '['}${min}, ${max}${xmax ? ')' : ']'}`;
  if (min !== undefined) return `${what} ${xmin ? '>' : '>='} ${min}`;
  if (max !== undefined) return `${what} ${xmax ? '<' : '<='} ${max}`;
  return what;
}

function inRange(x: number, spec: { min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean }): boolean {
  if (!Number.isFinite(x)) return false;
  if (spec.min !== undefined && (spec.exclusiveMin ? x <= spec.min : x < spec.min)) return false;
  if (spec.max !== undefined && (spec.exclusiveMax ? x >= spec.max : x > spec.max)) return false;
  return true;
}

/** Whether `v` is a valid value of `spec`. */
export function isValid(spec: OptionSpec, v: unknown): boolean {
  switch (spec.kind) {
    case 'number':
      return typeof v === 'number' && inRange(v, spec);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v) && inRange(v, spec);
    case 'string':
      return typeof v === 'string' && v.trim() !== '';
    case 'boolean':
      return typeof v === 'boolean';
    case 'choice':
      return typeof v === 'string' && spec.choices.includes(v);
    case 'numbers':
      return (
        Array.isArray(v) &&
        (spec.length === undefined || v.length === spec.length) &&
        v.length > 0 &&
        v.every((x) => typeof x === 'number' && (!spec.integer || Number.isInteger(x)) && inRange(x, { ...(spec.min !== undefined ? { min: spec.min } : {}) }))
      );
    case 'strings':
      return Array.isArray(v) && v.length > 0 && (spec.length === undefined || v.length === spec.length) && v.every((x) => typeof x === 'string' && x.trim() !== '');
    case 'numberMap':
      return (
        typeof v === 'object' &&
        v !== null &&
        !Array.isArray(v) &&
        Object.keys(v).length > 0 &&
        Object.entries(v).every(([k, x]) => k.trim() !== '' && typeof x === 'number' && inRange(x, spec))
      );
  }
}

/**
 * The library's entry check: `input` with every default applied, every given value checked
 * against its spec (OptionError names the first bad one) and unknown keys kept as they are (a
 * function's extra, non-schema options such as callbacks or streams). CLI-only options are ignored.
 */
export function resolveOptions<T extends OptionTable, X extends object = object>(
  table: T,
  input: (OptionsInput<T> & X) | undefined,
): ResolvedOptions<T> & X {
  const out: Record<string, unknown> = { ...(input ?? {}) };
  for (const [key, spec] of Object.entries(table)) {
    if (spec.cli === 'only') continue;
    const v = out[key];
    if (v === undefined) {
      if (spec.default !== undefined) out[key] = Array.isArray(spec.default) ? [...spec.default] : typeof spec.default === 'object' ? { ...spec.default } : spec.default;
      else delete out[key];
      continue;
    }
    if (!isValid(spec, v)) throw new OptionError(key, requirement(spec), v);
  }
  return out as ResolvedOptions<T> & X;
}

/** The defaults of a table, as data (for documentation and tests). */
export function defaultsOf<T extends OptionTable>(table: T): Partial<Record<keyof T, unknown>> {
  return Object.fromEntries(Object.entries(table).filter(([, s]) => s.default !== undefined).map(([k, s]) => [k, s.default])) as Partial<
    Record<keyof T, unknown>
  >;
}

/** A verb of the CLI and the library function behind it. */
export interface VerbSpec<T extends OptionTable = OptionTable> {
  name: string;
  /** Arguments after the verb, e.g. 'DATA_DIR [options]'. */
  usage: string;
  /** One line for `phoneside help`. */
  summary: string;
  /** Paragraphs printed before the options. */
  description?: string;
  /** Printed after the options. */
  footer?: string;
  /** Positional arguments: how many at least and at most (Infinity: any). */
  positionals: { min: number; max: number; name: string };
  options: T;
}

/** Defines a verb; the identity, for type inference of the option table. */
export function defineVerb<const T extends OptionTable>(verb: VerbSpec<T>): VerbSpec<T> {
  return verb;
}

/** `batchSize` -> `batch-size`. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The flag the CLI uses for an option (without dashes); booleans that default to true get `no-`. */
export function flagOf(key: string, spec: OptionSpec): string {
  if (spec.flag !== undefined) return spec.flag;
  if (spec.kind === 'boolean' && spec.default === true) return `no-${kebab(key)}`;
  return kebab(key);
}

/** Whether the CLI flag sets the option to false (`--no-x`, or an inverted flag such as `--quiet`). */
export function flagNegates(key: string, spec: OptionSpec): boolean {
  return spec.kind === 'boolean' && (spec.inverted === true || (spec.flag === undefined && spec.default === true));
}

/** The CLI words for an option's value in help: `--batch-size N`. */
export function flagUsage(key: string, spec: OptionSpec): string {
  const flag = `--${flagOf(key, spec)}`;
  if (spec.kind === 'boolean') return flag;
  return `${flag} ${placeholderOf(spec)}`;
}

function placeholderOf(spec: OptionSpec): string {
  if (spec.placeholder !== undefined) return spec.placeholder;
  switch (spec.kind) {
    case 'integer':
      return 'N';
    case 'number':
      return 'X';
    case 'choice':
      return spec.choices.join('|');
    case 'numbers':
      return spec.length === 2 ? 'A,B' : 'A,B,...';
    case 'numberMap':
      return 'NAME=X,...';
    case 'strings':
      return spec.repeatable ? 'VALUE' : 'A,B,...';
    default:
      return 'VALUE';
  }
}

/** The default as shown in help and README, or undefined when there is none to show. */
export function defaultText(spec: OptionSpec): string | undefined {
  if (spec.defaultText !== undefined) return spec.defaultText;
  if (spec.default === undefined) return undefined;
  if (spec.kind === 'boolean') return undefined; // the flag's presence says it
  if (Array.isArray(spec.default)) return spec.default.join(',');
  if (typeof spec.default === 'object') return Object.entries(spec.default).map(([k, x]) => `${k}=${x}`).join(',');
  return String(spec.default);
}

/** The range as shown in help and README ('1 to 65535', 'adam, adamw'), or undefined. */
export function rangeText(spec: OptionSpec): string | undefined {
  if (spec.kind === 'number' || spec.kind === 'integer') {
    if (spec.min === undefined && spec.max === undefined) return undefined;
    return requirement(spec).replace(/^an? (integer|number) ?/, '');
  }
  if (spec.kind === 'choice') return spec.choices.join(', ');
  return undefined;
}
