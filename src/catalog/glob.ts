/**
 * The --include / --exclude patterns of `catalog`: `*` (any characters but `/`), `?` (one),
 * `**` (any number of whole folders), `[abc]` / `[!abc]` / `[a-z]`, `{jpg,png}`. A pattern with a
 * `/` is matched against the path below the SRC folder (`2024/front_*.jpg`); one without is
 * matched against the file or folder name at any depth (`*.png`, `thumbs`), as in .gitignore.
 * Case-sensitive, like the shell. Written here because node:path's matchesGlob is experimental
 * in Node 20 (it prints a warning) and does not match bare names at any depth.
 */

export interface GlobMatcher {
  readonly pattern: string;
  /** Whether `relPath` (below the SRC folder, `/`-separated) matches. */
  test(relPath: string): boolean;
}

export class GlobError extends Error {
  override readonly name = 'GlobError';
}

const escape = (s: string): string => s.replace(/[\\^$.|+()[\]{}*?]/g, '\\$&');

function translate(p: string, pattern: string): string {
  let re = '';
  let braces = 0;
  for (let i = 0; i < p.length; i++) {
    const ch = p[i]!;
    if (ch === '*') {
      if (p[i + 1] === '*') {
        const atStart = i === 0 || p[i - 1] === '/';
        const atEnd = i + 2 === p.length || p[i + 2] === '/';
        if (!atStart || !atEnd) throw new GlobError(`bad pattern '${pattern}': ** must be a whole path segment (as in a/**/b)`);
        if (i + 2 === p.length) re += '.*';
        else {
          re += '(?:[^/]+/)*';
          i++; // the '/' after ** is part of the group
        }
        i++;
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = p.indexOf(']', i + 2);
      if (end < 0) throw new GlobError(`bad pattern '${pattern}': [ without ]`);
      let body = p.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^/' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else if (ch === '{') {
      braces++;
      re += '(?:';
    } else if (ch === '}' && braces > 0) {
      braces--;
      re += ')';
    } else if (ch === ',' && braces > 0) re += '|';
    else re += escape(ch);
  }
  if (braces > 0) throw new GlobError(`bad pattern '${pattern}': { without }`);
  return re;
}

/** A matcher for one pattern; GlobError for a malformed one (e.g. `[abc`). */
export function compileGlob(pattern: string): GlobMatcher {
  const trimmed = pattern.replace(/^\.\//, '').replace(/\/+$/, '');
  if (trimmed === '') throw new GlobError(`bad pattern '${pattern}': empty`);
  const anchored = trimmed.includes('/');
  const body = translate(trimmed.replace(/^\//, ''), pattern);
  const re = new RegExp(anchored ? `^${body}$` : `(?:^|/)${body}$`);
  return { pattern, test: (relPath) => re.test(relPath) };
}

/** Whether any of the matchers matches `relPath`. */
export function anyMatch(matchers: readonly GlobMatcher[], relPath: string): boolean {
  return matchers.some((m) => m.test(relPath));
}
