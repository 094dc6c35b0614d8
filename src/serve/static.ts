/**
 * The web page's files (listed by src/web/assets.ts) streamed from disk with revalidation
 * (ETag from size and mtime, `Cache-Control: no-cache`), and the security headers every response
 * carries. The page runs onnxruntime-web, which needs WebAssembly compilation
 * ('wasm-unsafe-eval') and blob: workers; nothing may come from another origin.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebAsset } from '../web/assets.js';
import { ApiError } from './errors.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self' blob: data:",
  "img-src 'self' blob: data:",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Sent on every response. COOP + COEP make the page cross-origin isolated, which lets
 * onnxruntime-web use SharedArrayBuffer (multi-threaded wasm); all its files are same-origin.
 */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/** True when the request's If-None-Match names `etag`. */
export function fresh(req: FastifyRequest, etag: string): boolean {
  const inm = req.headers['if-none-match'];
  return typeof inm === 'string' && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*');
}

/** Registers a GET (and HEAD) route for each asset. */
export function registerAssets(app: FastifyInstance, assets: readonly WebAsset[]): void {
  const seen = new Set<string>();
  for (const a of assets) {
    if (seen.has(a.urlPath)) throw new Error(`web asset ${a.urlPath} is listed twice`);
    seen.add(a.urlPath);
    app.get(a.urlPath, async (req: FastifyRequest, reply: FastifyReply) => {
      const st = await stat(a.file).catch(() => undefined);
      if (!st?.isFile()) throw new ApiError(404, 'not_found', `${a.urlPath} is missing on the server (${a.file})`);
      const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      reply.header('etag', etag).header('cache-control', 'no-cache').header('last-modified', st.mtime.toUTCString());
      if (fresh(req, etag)) return reply.code(304).send();
      reply.header('content-type', a.contentType).header('content-length', st.size);
      return reply.send(createReadStream(a.file));
    });
  }
}
