/** JSON files phoneside reads (manifests, run and cv files): a parse error names the file. */
import { readFile } from 'node:fs/promises';

/** `JSON.parse(text)`; a syntax error becomes `FILE is not valid JSON (why)`. */
export function parseJsonText(text: string, file: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${file} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
}

/** Reads and parses a JSON file; read errors pass through, parse errors name the file. */
export async function readJsonFile(file: string): Promise<unknown> {
  return parseJsonText(await readFile(file, 'utf8'), file);
}
