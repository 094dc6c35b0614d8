/**
 * Image type by magic bytes, for the service: the one format policy of src/data/formats.ts, which
 * the CLI applies to files too. The declared Content-Type is never trusted: a JPEG sent as
 * `application/x-www-form-urlencoded` (curl's default) is still a JPEG, and an SVG or PDF sent as
 * `image/jpeg` is still refused before it reaches the decoder (libvips would happily render SVG,
 * which can reference URLs; nothing here ever fetches one).
 */
export { checkFormat, sniffImage, REFUSALS, type FormatCheck, type ImageType, type RefusalCode, type Sniffed } from '../data/formats.js';
