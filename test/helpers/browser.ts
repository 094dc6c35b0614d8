/**
 * Headless Chromium for browser tests: Debian's `chromium` driven by playwright-core (never a
 * downloaded browser), with the flags that keep it off the network and a fresh profile each time.
 * Tests skip when no Chromium is installed (CI installs it: see .ci/run).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';

const CANDIDATES = [process.env['PHONESIDE_CHROMIUM'], '/usr/bin/chromium', '/usr/bin/chromium-browser'];

/** The Chromium executable, or undefined when none is installed. */
export const chromiumPath: string | undefined = CANDIDATES.find((p): p is string => !!p && existsSync(p));

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Launches Chromium with a fresh --user-data-dir (removed again by close()). */
export async function launchChromium(viewport = { width: 1280, height: 900 }): Promise<Browser> {
  if (!chromiumPath) throw new Error('no chromium installed (apt-get install chromium)');
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(join(tmpdir(), 'phoneside-chromium-'));
  // launchPersistentContext is how playwright takes a user data dir; it passes it as --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport,
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Records every request a page makes that is not to one of `allowedOrigins` (e.g. the test
 * server); `file:` and `data:`/`blob:` URLs are local and allowed.
 */
export function trackForeignRequests(context: BrowserContext, allowedOrigins: readonly string[] = []): string[] {
  const foreign: string[] = [];
  context.on('request', (req) => {
    const url = req.url();
    if (/^(data|blob|file|about):/.test(url)) return;
    if (allowedOrigins.some((o) => url.startsWith(o))) return;
    foreign.push(url);
  });
  return foreign;
}
