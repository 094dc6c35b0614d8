/**
 * The files of the web page served at `/` (web/ at the package root) and the few files of
 * onnxruntime-web it loads for on-device inference, each with the URL path it is served at.
 * Everything comes from phoneside's own install: no CDN. Paths are resolved from this module's
 * location, so it works from src/ (tsx) and from the built dist/ alike.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { packageRoot } from '../infer/package.js';

export interface WebAsset {
  /** Where the server answers it, e.g. '/', '/app.js', '/ort/ort.wasm.min.mjs'. */
  urlPath: string;
  /** Absolute path of the file on disk. */
  file: string;
  contentType: string;
}

/** The page's own files, under web/ (URL path = '/' + name, except index.html served at '/'). */
export const PAGE_FILES: readonly string[] = [
  'index.html',
  'style.css',
  'app.js',
  'ui.js',
  'server-mode.js',
  'device-mode.js',
  'preprocess.js',
  'resize.js',
  'heatmap.js',
];

/**
 * onnxruntime-web files, served under /ort/. Two entry bundles, each with the one wasm build it
 * loads (found by running the page in Chromium and checking the requests): the wasm-only bundle
 * (CPU, smallest wasm) and the WebGPU bundle, loaded instead when the browser has a GPU adapter.
 */
export const ORT_FILES: readonly string[] = [
  'ort.wasm.min.mjs',
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort.webgpu.min.mjs',
  'ort-wasm-simd-threaded.asyncify.mjs',
  'ort-wasm-simd-threaded.asyncify.wasm',
];

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
};

export function contentTypeOf(file: string): string {
  const ext = file.slice(file.lastIndexOf('.')).toLowerCase();
  const type = CONTENT_TYPES[ext];
  if (!type) throw new Error(`web asset ${file}: no content type known for '${ext}'`);
  return type;
}

/** The folder holding the page's files (web/ at the package root). */
export function webDir(): string {
  return join(packageRoot(), 'web');
}

/** onnxruntime-web's dist/ folder, resolved like an import from this package. */
export function ortDistDir(): string {
  const require = createRequire(import.meta.url);
  let wasm: string;
  try {
    // A file the package exports by name; package.json itself is not exported.
    wasm = require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm');
  } catch (err) {
    const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new Error(`the web page needs onnxruntime-web, which cannot be found (${why}); reinstall phoneside's dependencies (npm ci)`);
  }
  return dirname(wasm);
}

function checkFile(file: string, what: string): void {
  if (!existsSync(file) || !statSync(file).isFile()) {
    throw new Error(`web page file missing: ${file} (${what}); the installation is incomplete, reinstall phoneside`);
  }
}

/** The assets found in `web` (the page) and `ort` (onnxruntime-web's dist/); throws when one is missing. */
export function assetsFrom(web: string, ort: string): WebAsset[] {
  const assets: WebAsset[] = [];
  for (const name of PAGE_FILES) {
    const file = join(web, name);
    checkFile(file, 'phoneside web page');
    assets.push({ urlPath: name === 'index.html' ? '/' : `/${name}`, file, contentType: contentTypeOf(name) });
  }
  for (const name of ORT_FILES) {
    const file = join(ort, name);
    checkFile(file, 'onnxruntime-web');
    assets.push({ urlPath: `/ort/${name}`, file, contentType: contentTypeOf(name) });
  }
  return assets;
}

/** Every file the page needs, with its URL path; throws a clear error when one is missing. */
export function webAssets(): WebAsset[] {
  return assetsFrom(webDir(), ortDistDir());
}
