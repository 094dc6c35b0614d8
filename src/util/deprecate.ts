/** A DeprecationWarning for an old call form or option name, once per process and form. */
const warned = new Set<string>();

export function warnDeprecated(old: string, instead: string): void {
  if (warned.has(old)) return;
  warned.add(old);
  process.emitWarning(`${old} is deprecated and will be removed in the next release; use ${instead}`, { type: 'DeprecationWarning', code: 'PHONESIDE_DEPRECATED' });
}
