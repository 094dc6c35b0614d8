/**
 * `keys` of `o` whose values are not undefined, as an object: the options a caller set, passed on
 * under `exactOptionalPropertyTypes` without a `...(x !== undefined ? { x } : {})` per key.
 */
export function definedOnly<T extends object, K extends keyof T>(o: T, keys: readonly K[]): { [P in K]?: Exclude<T[P], undefined> } {
  const out: { [P in K]?: Exclude<T[P], undefined> } = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k] as Exclude<T[K], undefined>;
  return out;
}
