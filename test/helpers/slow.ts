/**
 * `npm run test:fast` sets PHONESIDE_FAST_TESTS=1: the slow tests (real-data training, headless
 * Chromium, the real shipped models) then skip, with `skip: SLOW` (or `skip: other || SLOW`).
 * `npm test`, which CI runs, leaves it unset and runs everything.
 */
export const SLOW: string | false = process.env['PHONESIDE_FAST_TESTS'] === '1' ? 'slow: skipped by npm run test:fast (PHONESIDE_FAST_TESTS=1)' : false;
