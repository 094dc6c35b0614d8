/**
 * Shared by the serve tests (test/serve-*.test.ts): the fixture model and its server options,
 * hand-built multipart bodies, the JSON shapes the API answers, and small helpers for errors,
 * Prometheus text, polling and gating inference.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ClassifyResponse } from '../../src/serve/classify-route.js';
import { after, before } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createServer, type ServeOptions } from '../../src/serve/server.js';
import { makeBundle, useSharedMobilenet } from './infer-fixture.js';
import { IMAGES } from './paths.js';

/** Request limits of the fixture servers (in bytes, as the tests cross them): small, so crossing them is cheap. */
export const LIMITS = { maxFiles: 3, maxFileBytes: 512 * 1024, maxBodyBytes: 1024 * 1024, maxPixels: 20_000_000 };
const MiB = 1024 * 1024;
/** LIMITS as server options. */
const LIMIT_OPTIONS = { maxFiles: LIMITS.maxFiles, maxImageMb: LIMITS.maxFileBytes / MiB, maxBodyMb: LIMITS.maxBodyBytes / MiB, maxPixels: LIMITS.maxPixels } satisfies ServeOptions;

export interface ServeFixture {
  /** Temporary folder (removed by cleanup()). */
  dir: string;
  /** The fixture bundle (test/helpers/infer-fixture.ts), id 'fixture'. */
  model: string;
  /** The two real photos of paths.ts IMAGES, as bytes. */
  jpegs: Buffer[];
  /** Server options: the fixture as server and device model, one worker, one thread, LIMITS. */
  options(): ServeOptions;
  /** Removes the folder and undoes the env.weightsDir entry. */
  cleanup(): Promise<void>;
}

/** What a describe block of serve tests shares, filled in by its before() hook. */
export interface ServeContext {
  fx: ServeFixture;
  /** The server on the fixture's options (when asked for). */
  app: FastifyInstance;
  /** The fixture's photos, as bytes. */
  jpegs: Buffer[];
  /** The fixture's server options. */
  base(): ServeOptions;
}

/**
 * Registers the before/after hooks of a describe block: the fixture (and, with `app`, a server on
 * it) before the tests, closed and removed after them.
 */
export function useServeFixture(opts: { app?: boolean } = {}): ServeContext {
  const ctx = { base: () => ctx.fx.options() } as ServeContext;
  before(async () => {
    ctx.fx = await serveFixture();
    ctx.jpegs = ctx.fx.jpegs;
    if (opts.app) ctx.app = await createServer(ctx.base());
  });
  after(async () => {
    await ctx.app?.close();
    await ctx.fx?.cleanup();
  });
  return ctx;
}

/**
 * Makes the fixture bundle in a fresh temporary folder and reads the photos; points
 * env.weightsDir at ../shared's MobileNetV2 weights (the fixture's backbone) until cleanup().
 */
export async function serveFixture(prefix = 'phoneside-serve-'): Promise<ServeFixture> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const restoreEnv = useSharedMobilenet();
  const model = await makeBundle(join(dir, 'fixture'));
  const jpegs = await Promise.all(IMAGES.map((f) => readFile(f)));
  return {
    dir,
    model,
    jpegs,
    options: () => ({ model, deviceModel: model, workers: 1, threads: 1, ...LIMIT_OPTIONS }),
    cleanup: async () => {
      restoreEnv();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** 25 Mpx of one colour: a few KB of PNG, far above the 20 Mpx limit (a decompression bomb). */
export function decompressionBomb(): Promise<Buffer> {
  return sharp({ create: { width: 5000, height: 5000, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
}

export interface FilePart {
  field?: string;
  filename?: string;
  type?: string;
  data: Uint8Array | string;
}

/** A multipart/form-data body built by hand (so tests control every byte). */
export function multipart(parts: FilePart[], extra: { name: string; value: string }[] = []): { payload: Buffer; headers: Record<string, string> } {
  const boundary = '----phoneside-test-boundary-7d1f';
  const chunks: Buffer[] = [];
  for (const f of extra) chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"\r\n\r\n${f.value}\r\n`));
  for (const p of parts) {
    const fn = p.filename !== undefined ? `; filename="${p.filename}"` : '';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.field ?? 'file'}"${fn}\r\nContent-Type: ${p.type ?? 'application/octet-stream'}\r\n\r\n`));
    chunks.push(Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

export interface ErrorJson {
  error: { status: number; code: string; message: string; file?: string; details?: { file: string; status: number; code: string }[] };
}

/** The answer of POST /v1/classify (each result a Prediction, plus filename and ms). */
export type ClassifyJson = ClassifyResponse;

/** Asserts the service's JSON error shape with this status and code; returns the error. */
export function assertError(res: { statusCode: number; json(): unknown; headers: Record<string, unknown> }, status: number, code: string): ErrorJson['error'] {
  const body = res.json() as ErrorJson;
  assert.equal(res.statusCode, status, JSON.stringify(body));
  assert.match(String(res.headers['content-type']), /application\/json/);
  assert.equal(body.error.status, status);
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 0);
  return body.error;
}

/** A counter's value from Prometheus text (0 when absent). */
export function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** Polls until `cond` holds (rather than sleeping a guessed time, which a slow CI box outlasts). */
export async function until(cond: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A gate the test opens: inference waits on it. */
export function gate(): { wait: () => Promise<void>; open: () => void; entered: Promise<void> } {
  let open!: () => void;
  let entered!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const enteredP = new Promise<void>((r) => (entered = r));
  return {
    wait: async () => {
      entered();
      await opened;
    },
    open,
    entered: enteredP,
  };
}

export const argmax = (p: Record<string, number>): string => Object.entries(p).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
