/**
 * Writes each verb's option table into README.md between its markers (`npm run readme:options`);
 * with --check, only says whether README.md is up to date (exit 1 if not). The tables come from
 * src/options, like the help text and the parser.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { VERBS } from '../src/options/index.js';
import { markdownTable, readmeMarkers } from '../src/options/help.js';

/** README text with every verb's table regenerated; verbs without markers are left alone. */
export function withOptionTables(readme: string): string {
  let out = readme;
  for (const verb of VERBS) {
    const { begin, end } = readmeMarkers(verb.name);
    const i = out.indexOf(begin);
    const j = out.indexOf(end);
    if (i < 0 || j < i) continue;
    out = `${out.slice(0, i + begin.length)}\n${markdownTable(verb)}${out.slice(j)}`;
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = new URL('../README.md', import.meta.url);
  const readme = await readFile(path, 'utf8');
  const next = withOptionTables(readme);
  if (process.argv.includes('--check')) {
    process.stdout.write(next === readme ? 'README.md option tables are up to date\n' : 'README.md option tables are stale: run npm run readme:options\n');
    process.exitCode = next === readme ? 0 : 1;
  } else if (next !== readme) {
    await writeFile(path, next);
    process.stdout.write('README.md option tables rewritten\n');
  }
}
