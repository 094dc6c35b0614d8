// @ts-check
/**
 * "On the server": each image is posted on its own to /v1/classify (so one bad or oversized file
 * fails alone and results arrive one by one). Errors come back as { error: { status, code,
 * message } } and are turned into ServerError for the page to show on the image's card.
 */

/** @typedef {import('./device-mode.js').Prediction} Prediction */

/** A refusal or failure of the server, for one image. */
export class ServerError extends Error {
  /**
   * @param {number} status  HTTP status (0 when the server could not be reached)
   * @param {string} code  e.g. 'unsupported_media_type', 'unauthorized', 'busy', 'network'
   * @param {string} message
   * @param {number} [retryAfter]  seconds, from Retry-After
   */
  constructor(status, code, message, retryAfter) {
    super(message);
    this.name = 'ServerError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Retries of a 503 (server busy) before giving up on the image. */
const BUSY_RETRIES = 2;

/**
 * @param {Response} res
 * @returns {Promise<ServerError>}
 */
async function toServerError(res) {
  let code = `http_${res.status}`;
  let message = `the server answered HTTP ${res.status}`;
  try {
    const body = await res.json();
    if (body && typeof body.error === 'object' && body.error) {
      if (typeof body.error.code === 'string') code = body.error.code;
      if (typeof body.error.message === 'string') message = body.error.message;
    }
  } catch {
    /* not JSON: keep the generic message */
  }
  const ra = Number(res.headers.get('retry-after'));
  return new ServerError(res.status, code, message, Number.isFinite(ra) && ra >= 0 ? ra : undefined);
}

/**
 * Describes the server's own model (GET v1/models); null when it cannot be read.
 * @returns {Promise<{ id: string, version: string } | null>}
 */
export async function serverModel() {
  try {
    const res = await fetch(new URL('v1/models', document.baseURI).href, { headers: { accept: 'application/json' } });
    if (!res.ok) return null;
    const body = await res.json();
    // { models: [{ id, version, role: 'server' | 'device' }, ...] }
    const models = Array.isArray(body?.models) ? body.models : [];
    const m = models.find((/** @type {{ role?: string }} */ x) => x?.role === 'server') ?? models[0];
    return m && typeof m.id === 'string' ? { id: m.id, version: String(m.version ?? '') } : null;
  } catch {
    return null;
  }
}

/**
 * Classifies one file on the server.
 * @param {File} file
 * @param {{ apiKey?: string | null, onWait?: (seconds: number) => void }} [opts]
 * @returns {Promise<Prediction & { model?: { id: string, version: string }, serverMs?: number }>}
 */
export async function classifyOnServer(file, opts = {}) {
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    const form = new FormData();
    form.append('file', file, file.name);
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (opts.apiKey) headers['x-api-key'] = opts.apiKey;
    /** @type {Response} */
    let res;
    try {
      res = await fetch(new URL('v1/classify', document.baseURI).href, { method: 'POST', body: form, headers });
    } catch {
      throw new ServerError(0, 'network', 'the server could not be reached');
    }
    if (res.ok) {
      const body = await res.json();
      const r = body?.results?.[0];
      if (!r || typeof r.label !== 'string' || typeof r.probabilities !== 'object') throw new ServerError(res.status, 'bad_response', 'the server gave an answer this page does not understand');
      return {
        label: r.label,
        predicted: r.predicted ?? r.label,
        confidence: r.confidence ?? Math.max(...Object.values(/** @type {Record<string, number>} */ (r.probabilities))),
        probabilities: r.probabilities,
        ms: performance.now() - t0,
        serverMs: typeof r.ms === 'number' ? r.ms : undefined,
        model: body.model,
      };
    }
    const err = await toServerError(res);
    if (res.status === 503 && attempt < BUSY_RETRIES) {
      const wait = Math.min(10, err.retryAfter ?? 1);
      opts.onWait?.(wait);
      await sleep(wait * 1000);
      continue;
    }
    throw err;
  }
}
