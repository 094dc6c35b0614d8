/**
 * The web page's files: every asset exists with the right content type, every module the page
 * imports is served (and nothing Node-only or from another origin is imported), and the page
 * names no other origin at all (no CDN).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { assetsFrom, contentTypeOf, ORT_FILES, ortDistDir, PAGE_FILES, webAssets, webDir } from '../src/web/assets.js';

const assets = webAssets();
const byPath = new Map(assets.map((a) => [a.urlPath, a]));
const pageFiles = assets.filter((a) => !a.urlPath.startsWith('/ort/'));

/** Module specifiers in a JS source: static imports/re-exports and dynamic import('...'). */
function importSpecifiers(src: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\bimport\s+(?:[\w*${}\s,]+\s+from\s+)?['"]([^'"]+)['"]/g,
    /\bexport\s+[\w*${}\s,]+\s+from\s+['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of src.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/** The URL path a specifier resolves to from a module served at `from`. */
function resolveUrlPath(spec: string, from: string): string {
  return new URL(spec, `http://page${from}`).pathname;
}

describe('web assets', () => {
  it('lists the page at / and every page module, each existing on disk', () => {
    for (const p of ['/', '/app.js', '/style.css', '/resize.js', '/preprocess.js', '/device-mode.js', '/server-mode.js', '/ui.js']) {
      assert.ok(byPath.has(p), `${p} is not listed`);
    }
    assert.equal(byPath.get('/')!.file, join(webDir(), 'index.html'));
    for (const a of assets) assert.ok(existsSync(a.file), `${a.urlPath}: ${a.file} is missing`);
    assert.equal(new Set(assets.map((a) => a.urlPath)).size, assets.length, 'a URL path is listed twice');
  });

  it('serves every file of web/ (none left out) and nothing else from it', () => {
    // .d.ts files type the page's modules for the TypeScript that shares them (heatmap.js); not served.
    const onDisk = readdirSync(webDir()).filter((f) => !f.startsWith('.') && !f.endsWith('.d.ts')).sort();
    assert.deepEqual(onDisk, [...PAGE_FILES].sort());
  });

  it('gives each asset its content type (wasm as application/wasm for streaming compilation)', () => {
    assert.equal(byPath.get('/')!.contentType, 'text/html; charset=utf-8');
    assert.equal(byPath.get('/style.css')!.contentType, 'text/css; charset=utf-8');
    assert.match(byPath.get('/app.js')!.contentType, /^text\/javascript/);
    for (const a of assets.filter((x) => x.file.endsWith('.wasm'))) assert.equal(a.contentType, 'application/wasm', a.urlPath);
    for (const a of assets.filter((x) => x.file.endsWith('.mjs'))) assert.match(a.contentType, /^text\/javascript/, a.urlPath);
    assert.throws(() => contentTypeOf('x.exe'), /no content type known/);
  });

  it('takes onnxruntime-web from its installed package, only the files the page loads', () => {
    const ort = ortDistDir();
    assert.ok(existsSync(join(ort, 'ort.wasm.min.mjs')), ort);
    const served = assets.filter((a) => a.urlPath.startsWith('/ort/'));
    assert.deepEqual(served.map((a) => basename(a.file)).sort(), [...ORT_FILES].sort());
    for (const a of served) assert.equal(a.file, join(ort, basename(a.urlPath)));
    // Each entry bundle's wasm glue (and its .wasm) is served too.
    for (const entry of ['ort.wasm.min.mjs', 'ort.webgpu.min.mjs']) {
      const src = readFileSync(join(ort, entry), 'utf8');
      const glue = [...new Set(src.match(/ort-wasm-simd-threaded[\w.]*\.mjs/g) ?? [])];
      assert.equal(glue.length, 1, `${entry} loads ${glue.join(', ')}`);
      assert.ok(byPath.has(`/ort/${glue[0]}`), `${entry} loads ${glue[0]}, which is not served`);
      assert.ok(byPath.has(`/ort/${glue[0]!.replace(/\.mjs$/, '.wasm')}`), `${glue[0]}'s .wasm is not served`);
    }
  });

  it('fails with a clear error when a file is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'phoneside-web-'));
    try {
      for (const f of PAGE_FILES.filter((f) => f !== 'app.js')) writeFileSync(join(dir, f), '');
      assert.throws(() => assetsFrom(dir, ortDistDir()), (err: Error) => err.message.includes(join(dir, 'app.js')) && /missing/.test(err.message));
      writeFileSync(join(dir, 'app.js'), '');
      assert.throws(() => assetsFrom(dir, dir), (err: Error) => err.message.includes('onnxruntime-web') && err.message.includes(join(dir, ORT_FILES[0]!)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has browser modules that import only served relative modules and /ort/ files', () => {
    let checked = 0;
    for (const a of pageFiles.filter((x) => x.file.endsWith('.js'))) {
      const src = readFileSync(a.file, 'utf8');
      // Block comments hold JSDoc type imports (e.g. of src/infer/prediction.ts's Prediction): never loaded.
      for (const spec of importSpecifiers(src.replace(/\/\*[\s\S]*?\*\//g, ''))) {
        checked++;
        assert.ok(/^\.{1,2}\//.test(spec) || spec.startsWith('/ort/'), `${a.urlPath} imports '${spec}': only relative paths or /ort/ are allowed`);
        assert.ok(!/^node:/.test(spec), `${a.urlPath} imports Node module ${spec}`);
        const target = resolveUrlPath(spec, a.urlPath);
        assert.ok(byPath.has(target), `${a.urlPath} imports ${spec} -> ${target}, which is not served`);
      }
      const dynamic = src.match(/\bimport\s*\(/g)?.length ?? 0;
      const literal = src.match(/\bimport\s*\(\s*['"][^'"]+['"]\s*\)/g)?.length ?? 0;
      assert.equal(dynamic, literal, `${a.urlPath}: a dynamic import() without a literal specifier cannot be checked`);
      // Nothing Node-only used as a global either.
      assert.ok(!/\b(require\(|process\.|Buffer\.|__dirname)/.test(src), `${a.urlPath} uses a Node-only global`);
    }
    assert.ok(checked >= 8, `only ${checked} imports found: is the import scanner broken?`);
  });

  it('loads its scripts and styles from the page folder, with no inline script (the server CSP forbids it)', () => {
    const html = readFileSync(byPath.get('/')!.file, 'utf8');
    const refs = [...html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]!);
    assert.ok(refs.length >= 3, refs.join(', '));
    for (const ref of refs) {
      if (ref.startsWith('data:')) continue;
      assert.ok(byPath.has(resolveUrlPath(ref, '/')), `index.html references ${ref}, which is not served`);
    }
    for (const m of html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)) {
      assert.match(m[1]!, /\bsrc=/, 'inline <script> found');
      assert.equal(m[2]!.trim(), '', 'inline script content found');
    }
    assert.ok(!/\son[a-z]+\s*=/.test(html), 'inline event handler attribute found');
  });

  it('names no http(s) URL of another origin in any page file', () => {
    for (const a of pageFiles) {
      const src = readFileSync(a.file, 'utf8');
      const urls = src.match(/\bhttps?:\/\/[^\s'"`)<>]+/g) ?? [];
      assert.deepEqual(urls, [], `${a.urlPath} names ${urls.join(', ')}`);
      assert.ok(!/(^|[\s'"(=])\/\/[a-z0-9.-]+\.[a-z]{2,}\//i.test(src), `${a.urlPath} has a protocol-relative URL`);
    }
  });
});
