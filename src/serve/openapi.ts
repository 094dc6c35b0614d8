/**
 * The service's OpenAPI 3.1 description (served at `/docs/openapi.json`, and as a plain HTML
 * page at `/docs` for browsers; no CDN, no external script).
 */

export interface DocLimits {
  maxFiles: number;
  maxFileBytes: number;
  maxBodyBytes: number;
  maxPixels: number;
  timeoutMs: number;
  apiKey: boolean;
  /** Whether the model's per-class thresholds apply by default (false under --no-thresholds); default true. */
  thresholds?: boolean;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const mib = (n: number): string => `${(n / 1048576).toFixed(n % 1048576 === 0 ? 0 : 1)} MiB`;

const errorResponse = (description: string): Json => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

export function openApiDocument(l: DocLimits, version: string): Record<string, Json> {
  const security: Json = l.apiKey ? [{ bearer: [] }, { apiKey: [] }] : [];
  const thresholdsOn = l.thresholds !== false;
  return {
    openapi: '3.1.0',
    info: {
      title: 'phoneside',
      version,
      description:
        'Classifies photos as the front of a mobile phone, its back, or neither (none). ' +
        'Every error is JSON: {"error": {"status", "code", "message", "file"?}} with that HTTP status. ' +
        (l.apiKey ? 'Routes under /v1 need the API key (Authorization: Bearer KEY, or X-API-Key: KEY). ' : 'No API key is configured. ') +
        'The server never fetches URLs.',
    },
    paths: {
      '/v1/classify': {
        post: {
          summary: 'Classify one or more images',
          description:
            `Send images as multipart/form-data file fields (any field name; the web page uses \`file\`, repeated; at most ${l.maxFiles} files, ` +
            `${mib(l.maxFileBytes)} each, ${mib(l.maxBodyBytes)} in all), or one image as the raw request body (any Content-Type: the type is ` +
            `read from the bytes). JPEG, PNG, WebP, GIF (first frame), AVIF and TIFF are accepted; at most ${l.maxPixels} pixels per image.\n\n` +
            'All or nothing: every file is checked and decoded before any is classified; if one or more are bad, the whole request fails ' +
            'with the status of the first bad file, `error.file` naming it and `error.details` listing every bad file when there are several; ' +
            'nothing is classified, so the client can drop or fix those files and resend.\n\n' +
            `Inference runs through a bounded queue: when it is full the answer is 503 with Retry-After, at once. A request that takes longer than ${l.timeoutMs} ms is answered 504 (408 while its body is still arriving, or when the upload stalls).`,
          security,
          parameters: [
            {
              name: 'minConfidence',
              in: 'query',
              required: false,
              description: "Answer 'uncertain' when the top probability is below this (0..1); the model's own per-class thresholds apply too (see `thresholds`).",
              schema: { type: 'number', minimum: 0, maximum: 1 },
            },
            {
              name: 'thresholds',
              in: 'query',
              required: false,
              description:
                "Apply the model's own per-class minimum confidences (its `thresholds`, listed by GET /v1/models): an image whose top probability is below " +
                "the threshold of its top class is answered 'uncertain'. `thresholds=false` gives the raw label (the most probable class). " +
                `Default: ${thresholdsOn ? 'true' : "false on this server, which runs with --no-thresholds ('thresholds=true' turns them on)"}.`,
              schema: { type: 'boolean', default: thresholdsOn },
            },
          ],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': { schema: { type: 'object', properties: { file: { type: 'array', items: { type: 'string', format: 'binary' } } } } },
              'image/*': { schema: { type: 'string', format: 'binary' } },
              'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
            },
          },
          responses: {
            '200': { description: 'One result per image, in upload order', content: { 'application/json': { schema: { $ref: '#/components/schemas/ClassifyResponse' } } } },
            '400': errorResponse('no image, an empty image, too many files (too_many_files), malformed multipart, bad query'),
            '401': errorResponse('missing or wrong API key'),
            '408': errorResponse('the upload stalled or was too slow (request_timeout); the connection is closed'),
            '413': errorResponse('body (body_too_large) or one image (image_too_large) too large, or too many pixels (too_many_pixels)'),
            '415': errorResponse('not an image, or an unsupported type such as HEIC, SVG, BMP (unsupported_media_type)'),
            '422': errorResponse('an image that is corrupt or truncated (corrupt_image)'),
            '503': errorResponse('queue full (busy; see Retry-After) or shutting down'),
            '504': errorResponse('the request took longer than the timeout (timeout)'),
          },
        },
      },
      '/v1/models': {
        get: {
          summary: 'The models loaded: classes, preprocessing, thresholds, validation metrics from the model card',
          security,
          responses: { '200': { description: 'Models', content: { 'application/json': { schema: { $ref: '#/components/schemas/Models' } } } }, '401': errorResponse('missing or wrong API key') },
        },
      },
      '/models/device.json': {
        get: {
          summary: 'The on-device model for the web page: classes, preprocessing, the thresholds the page applies, and where its ONNX file is',
          responses: {
            '200': { description: 'Device model description', content: { 'application/json': { schema: { $ref: '#/components/schemas/DeviceModel' } } } },
            '404': errorResponse('the server runs without a device model'),
            '503': errorResponse('the device model could not be loaded (message says why)'),
          },
        },
      },
      '/models/device.onnx': {
        get: {
          summary: "The on-device classifier as one ONNX file: input 'input' [N,3,H,W] float32 normalised pixels, output 'output' [N,classes] probabilities",
          responses: { '200': { description: 'ONNX model', content: { 'application/octet-stream': {} } }, '404': errorResponse('no device model'), '503': errorResponse('device model unavailable') },
        },
      },
      '/healthz': { get: { summary: 'Liveness: the process answers', responses: { '200': { description: '{"status":"ok"}' } } } },
      '/readyz': {
        get: { summary: 'Readiness: the model is loaded and the server is not shutting down', responses: { '200': { description: 'ready' }, '503': errorResponse('not ready') } },
      },
      '/metrics': {
        get: {
          summary: 'Prometheus metrics: requests, errors, latency histograms, queue depth, images by label',
          responses: { '200': { description: 'text/plain; version=0.0.4', content: { 'text/plain': {} } } },
        },
      },
      '/docs': { get: { summary: 'This description: HTML for browsers, JSON otherwise (also /docs/openapi.json)', responses: { '200': { description: 'OpenAPI' } } } },
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['status', 'code', 'message'],
              properties: {
                status: { type: 'integer' },
                code: { type: 'string', description: 'stable machine-readable code, e.g. corrupt_image, busy' },
                message: { type: 'string' },
                file: { type: 'string', description: 'the uploaded file the error is about (multipart filename, "file #N" without one, or "body")' },
                details: {
                  type: 'array',
                  description: 'every bad file, when there are several',
                  items: { type: 'object', properties: { file: { type: 'string' }, status: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } } },
                },
              },
            },
          },
        },
        ClassifyResponse: {
          type: 'object',
          required: ['model', 'results'],
          properties: {
            model: {
              type: 'object',
              properties: {
                id: { type: 'string', description: 'shipped model name (resnet50, mobilenet_v2), else the bundle folder or .onnx file name' },
                version: {
                  type: 'string',
                  description: "'<created YYYYMMDD>-<12 hex>': the model's creation date and the start of the sha256 of its manifest.json, a NUL byte and its weights.bin (of the file, for an .onnx); it changes exactly when the model's answers can",
                },
              },
            },
            results: {
              type: 'array',
              items: {
                type: 'object',
                required: ['filename', 'label', 'predicted', 'confidence', 'probabilities', 'ms'],
                properties: {
                  filename: { type: ['string', 'null'] },
                  label: { type: 'string', description: "the class, or 'uncertain' when the top probability is below minConfidence or the model's threshold for that class (unless thresholds=false)" },
                  predicted: { type: 'string', description: 'the most probable class' },
                  confidence: { type: 'number', description: 'probability of `predicted`' },
                  probabilities: { type: 'object', additionalProperties: { type: 'number' } },
                  ms: { type: 'number', description: "this image's decode time plus its share of the batch's inference" },
                },
              },
            },
            ms: { type: 'number', description: 'the whole request, from arrival to answer' },
          },
        },
        Models: { type: 'object', properties: { models: { type: 'array', items: { type: 'object' } } } },
        DeviceModel: {
          type: 'object',
          properties: {
            id: { type: 'string' },
            version: { type: 'string' },
            classes: { type: 'array', items: { type: 'string' } },
            preprocessing: {
              type: 'object',
              description: 'decode as 8-bit sRGB, resize to size x size (resize policy), order channels, x = (pixel - mean) / std with pixels in 0..255, NCHW',
            },
            thresholds: {
              type: 'object',
              additionalProperties: { type: 'number' },
              description: "per-class minimum confidence the page applies ('uncertain' below it); {} when the server runs with --no-thresholds",
            },
            temperature: { type: 'number' },
            onnx: { type: 'string' },
            bytes: { type: 'integer' },
            sha256: { type: 'string' },
            precision: { type: 'string', enum: ['fp32', 'int8'], description: "'int8': a statically quantized graph (--device-precision int8)" },
          },
        },
      },
    },
  };
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A readable page listing the routes, their statuses and descriptions. */
export function renderDocsHtml(doc: Record<string, Json>): string {
  const paths = doc['paths'] as Record<string, Record<string, Record<string, Json>>>;
  const rows: string[] = [];
  for (const [path, ops] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const responses = Object.entries((op['responses'] ?? {}) as Record<string, { description?: string }>)
        .map(([code, r]) => `<li><code>${esc(code)}</code> ${esc(r.description ?? '')}</li>`)
        .join('');
      const desc = typeof op['description'] === 'string' ? `<p>${esc(op['description']).replace(/\n\n/g, '</p><p>')}</p>` : '';
      rows.push(`<section><h2><code>${method.toUpperCase()} ${esc(path)}</code></h2><p>${esc(String(op['summary'] ?? ''))}</p>${desc}<ul>${responses}</ul></section>`);
    }
  }
  const info = doc['info'] as { title: string; version: string; description: string };
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)} API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}code{background:#f3f3f3;padding:0 .2em}section{border-top:1px solid #ddd;margin-top:1rem}</style></head>
<body><h1>${esc(info.title)} API <small>${esc(info.version)}</small></h1><p>${esc(info.description)}</p>
<p>Machine-readable: <a href="/docs/openapi.json">/docs/openapi.json</a> (OpenAPI 3.1).</p>${rows.join('\n')}</body></html>`;
}
