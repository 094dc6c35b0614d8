/** Help text and README tables, both written from a verb's option table. */
import { defaultText, flagOf, flagUsage, kebab, rangeText, type OptionSpec, type OptionTable, type VerbSpec } from './schema.js';

const WIDTH = 100;
const FLAG_COLUMN = 25;

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    // A paragraph's leading spaces indent all its lines (lists in descriptions).
    const indent = /^ */.exec(paragraph)![0];
    let line = '';
    for (const word of paragraph.trim().split(/ +/)) {
      if (line !== '' && line.length + 1 + word.length > width) {
        lines.push(line);
        line = (indent === '' ? '' : `${indent}  `) + word;
      } else line = line === '' ? indent + word : `${line} ${word}`;
    }
    lines.push(line);
  }
  return lines;
}

/** The help sentence with its default, range and environment variable appended. */
function helpSentence(spec: OptionSpec, forReadme: boolean): string {
  const extras: string[] = [];
  if (!forReadme) {
    const d = defaultText(spec);
    if (d !== undefined) extras.push(`default ${d}`);
    // A choice's values are in its placeholder unless it has a name of its own.
    const r = spec.kind === 'choice' && spec.placeholder === undefined ? undefined : rangeText(spec);
    if (r !== undefined) extras.push(r);
  }
  if (spec.envVar !== undefined) extras.push(`env ${spec.envVar}`);
  return extras.length > 0 ? `${spec.help} (${extras.join('; ')})` : spec.help;
}

/** The options of a table the CLI shows, in table order. */
export function cliEntries(table: OptionTable): [string, OptionSpec][] {
  return Object.entries(table).filter(([, s]) => s.cli !== false);
}

/** `phoneside VERB --help`. */
export function helpText(verb: VerbSpec): string {
  const out: string[] = [`phoneside ${verb.name} ${verb.usage}`, ''];
  if (verb.description) out.push(...wrap(verb.description, WIDTH), '');
  let group: string | undefined;
  for (const [key, spec] of cliEntries(verb.options)) {
    if (spec.group !== group) {
      group = spec.group;
      if (group !== undefined) out.push(`${group}:`);
    }
    const flag = `  ${flagUsage(key, spec)}${spec.short ? `, -${spec.short}` : ''}`;
    const text = wrap(helpSentence(spec, false), WIDTH - FLAG_COLUMN);
    if (flag.length + 1 < FLAG_COLUMN) out.push(flag.padEnd(FLAG_COLUMN) + text[0]);
    else out.push(flag, ' '.repeat(FLAG_COLUMN) + text[0]);
    for (const line of text.slice(1)) out.push(' '.repeat(FLAG_COLUMN) + line);
  }
  if (verb.footer) out.push('', ...wrap(verb.footer, WIDTH));
  return out.join('\n') + '\n';
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The README's table of a verb's options: option, meaning, default (range). */
export function markdownTable(verb: VerbSpec): string {
  const rows = ['| option | meaning | default (range) |', '| --- | --- | --- |'];
  for (const [key, spec] of cliEntries(verb.options)) {
    const d = defaultText(spec);
    const r = rangeText(spec);
    const dr = [d ?? (spec.kind === 'boolean' ? 'off' : '—'), r !== undefined ? `(${r})` : ''].filter((s) => s !== '').join(' ');
    rows.push(`| \`${flagUsage(key, spec)}\` | ${cell(helpSentence(spec, true))} | ${cell(dr)} |`);
  }
  return rows.join('\n') + '\n';
}

/** The README markers around a verb's generated table. */
export function readmeMarkers(verb: string): { begin: string; end: string } {
  return { begin: `<!-- options:${verb} (generated from src/options; npm run readme:options) -->`, end: `<!-- /options:${verb} -->` };
}

/** The flag (with dashes) the CLI uses for a library option of a table; kebab-case when unknown. */
export function flagFor(table: OptionTable, key: string): string {
  const spec = table[key];
  return `--${spec ? flagOf(key, spec) : kebab(key)}`;
}
