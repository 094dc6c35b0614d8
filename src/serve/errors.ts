/**
 * The service's one error shape, `{ error: { status, code, message, file? } }`, and the mapping of
 * every failure (ours, fastify's, @fastify/multipart's, the image decoder's) onto it, so that a
 * client always gets a status and a stable machine-readable code, never a stack trace.
 */
import { ImageDecodeError } from '../data/image.js';

export interface ErrorBody {
  error: {
    status: number;
    code: string;
    message: string;
    /** The uploaded file the error is about (its multipart filename, or `body` for a raw body). */
    file?: string;
    /** When several uploaded files are bad: each of them (the first one is also `file`). */
    details?: { file: string; status: number; code: string; message: string }[];
  };
}

/** An error with its HTTP answer. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly file?: string,
    /** Extra response headers (e.g. Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  withFile(file: string): ApiError {
    return new ApiError(this.status, this.code, this.message, file, this.headers);
  }
}

/** Several uploaded files failed: answered with the first one's status, naming all of them. */
export class FilesError extends ApiError {
  constructor(readonly errors: ApiError[]) {
    const first = errors[0]!;
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more bad file${errors.length > 2 ? 's' : ''})` : '';
    super(first.status, first.code, first.message + more, first.file);
  }
}

export function errorBody(e: ApiError): ErrorBody {
  const body: ErrorBody = { error: { status: e.status, code: e.code, message: e.message } };
  if (e.file !== undefined) body.error.file = e.file;
  if (e instanceof FilesError && e.errors.length > 1) {
    body.error.details = e.errors.map((x) => ({ file: x.file ?? '', status: x.status, code: x.code, message: x.message }));
  }
  return body;
}

/**
 * 503s the service answers on purpose (queue full, shutting down): the service works as designed,
 * so they are logged as one line, not as failures with a stack.
 */
export function isExpectedUnavailable(e: ApiError): boolean {
  return e.status === 503 && (e.code === 'busy' || e.code === 'shutting_down');
}

/**
 * A connection-level error of Node's HTTP server (its 'clientError': a malformed request line or
 * header, headers over the size limit, a request that did not arrive within the server's header or
 * request timeout) -> the answer, in the service's shape.
 */
export function clientApiError(code: string | undefined): ApiError {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError(408, 'request_timeout', 'the request did not arrive in time');
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError(431, 'headers_too_large', 'the request headers are too large');
    default:
      return new ApiError(400, 'bad_request', 'malformed HTTP request');
  }
}

/** A decoder failure -> 415 / 413 / 422, by the decoder's stable reason. */
export function decodeApiError(err: ImageDecodeError, file: string, maxPixels: number): ApiError {
  switch (err.reason) {
    case 'not an image / unsupported format':
      return new ApiError(415, 'unsupported_media_type', 'not an image in a supported format (JPEG, PNG, WebP, GIF, AVIF, TIFF)', file);
    case 'too many pixels':
      return new ApiError(413, 'too_many_pixels', `image has more than ${maxPixels} pixels (decompression-bomb limit)`, file);
    case 'empty file':
      return new ApiError(400, 'empty_image', 'the image is empty (0 bytes)', file);
    default:
      return new ApiError(422, 'corrupt_image', `the image could not be decoded: ${err.reason}`, file);
  }
}

interface FrameworkError {
  code?: string;
  statusCode?: number;
  message?: string;
  validation?: unknown;
}

/** The size limits an upload is checked against (for the messages of 413/400 errors). */
export interface UploadLimits {
  maxBodyBytes: number;
  maxFileBytes: number;
  maxFiles: number;
}

const mb = (n: number): string => `${(n / 1048576).toFixed(n % 1048576 === 0 ? 0 : 1)} MiB`;

/** 413 body_too_large: the request body is over `maxBodyBytes`. */
export function bodyTooLarge(maxBodyBytes: number): ApiError {
  return new ApiError(413, 'body_too_large', `request body is larger than ${mb(maxBodyBytes)}`);
}

/**
 * Any thrown value -> ApiError. Errors from fastify and @fastify/multipart carry a `code`; anything
 * without an HTTP status is a bug on our side and becomes a generic 500 (its text is logged, not sent).
 */
export function toApiError(err: unknown, limits: UploadLimits): ApiError {
  if (err instanceof ApiError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as FrameworkError;
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return bodyTooLarge(limits.maxBodyBytes);
    case 'FST_REQ_FILE_TOO_LARGE':
      return new ApiError(413, 'image_too_large', `an image is larger than ${mb(limits.maxFileBytes)}`);
    case 'FST_FILES_LIMIT':
      return new ApiError(400, 'too_many_files', `too many files: at most ${limits.maxFiles} images per request`);
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new ApiError(400, 'too_many_parts', 'too many multipart fields');
    case 'FST_PROTO_VIOLATION':
    case 'FST_INVALID_JSON_FIELD_ERROR':
      return new ApiError(400, 'bad_multipart', e.message ?? 'malformed multipart field');
    case 'FST_MP_PREMATURE_CLOSE':
      return new ApiError(400, 'incomplete_body', 'the request ended before the multipart data was complete');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'unsupported_media_type', e.message ?? 'unsupported content type');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ApiError(400, 'bad_request', e.message ?? 'malformed body');
    default:
      break;
  }
  if (e.validation !== undefined) return new ApiError(400, 'bad_request', e.message ?? 'invalid request');
  // busboy's own parse errors ("Malformed part header", "Unexpected end of form") have no code.
  if (typeof e.message === 'string' && /multipart|boundary|part header|end of form/i.test(e.message) && e.statusCode === undefined) {
    return new ApiError(400, 'bad_multipart', `malformed multipart body: ${e.message}`);
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new ApiError(e.statusCode, (e.code ?? 'bad_request').toLowerCase().replace(/^fst_(err_)?/, ''), e.message ?? 'bad request');
  }
  return new ApiError(500, 'internal', 'internal server error');
}
