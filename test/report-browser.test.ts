/**
 * The HTML evaluation report in headless Chromium: the confusion matrix and the gallery render
 * (thumbnails decode), every section is there, and the page makes no network request.
 * Skipped when Chromium is not installed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { evaluationHtml } from '../src/eval/html-report.js';
import { readRunArtifacts } from '../src/eval/run-folder.js';
import { chromiumPath, launchChromium, trackForeignRequests } from './helpers/browser.js';
import { CLASSES, fixtureReport, makeFixtureRun } from './helpers/report-fixture.js';
import { SLOW } from './helpers/slow.js';

test('the evaluation report opens in headless Chromium with its matrix and gallery, offline', { skip: (!chromiumPath && 'chromium not installed') || SLOW, timeout: 120_000 }, async () => {
  const root = await mkdtemp(join(tmpdir(), 'phoneside-report-browser-'));
  const browser = await launchChromium();
  try {
    const { runDir, dataDir } = await makeFixtureRun(root);
    const report = fixtureReport(runDir, dataDir, await readRunArtifacts(runDir));
    const file = join(root, 'report.html');
    await writeFile(file, await evaluationHtml(report, { dataDir }));

    const requests: string[] = [];
    browser.context.on('request', (r) => requests.push(r.url()));
    const foreign = trackForeignRequests(browser.context);
    const page = await browser.context.newPage();
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

    // Confusion matrix: 3x3 cells whose counts are the report's.
    const cells = await page.$$eval('#confusion-matrix svg g.cell', (gs) => gs.map((g) => ({ t: g.getAttribute('data-true'), p: g.getAttribute('data-pred'), n: Number(g.getAttribute('data-count')) })));
    assert.equal(cells.length, 9);
    for (const c of cells) assert.equal(c.n, report.metrics.confusion[CLASSES.indexOf(c.t!)]![CLASSES.indexOf(c.p!)]);
    assert.ok(await page.isVisible('#confusion-matrix svg'));
    // Gallery: one figure per mistake, each thumbnail decoded by the browser.
    const figures = await page.$$eval('#gallery figure.mistake img', (imgs) => imgs.map((i) => ({ w: (i as HTMLImageElement).naturalWidth, ok: (i as HTMLImageElement).complete })));
    assert.equal(figures.length, report.mistakes.length);
    for (const f of figures) assert.ok(f.ok && f.w > 0, 'thumbnail decoded');
    const firstCaption = await page.textContent('#gallery figure.mistake figcaption');
    assert.match(firstCaption ?? '', /true front.*predicted none.*85\.0%/s);
    for (const id of ['summary', 'per-class', 'confused-pairs', 'pr-curves', 'reliability', 'training', 'data']) {
      assert.ok(await page.isVisible(`section#${id}`), id);
    }
    assert.equal(await page.$$eval('#pr-curves svg', (s) => s.length), 3);
    assert.equal(await page.$$eval('#reliability svg', (s) => s.length), 2);
    assert.equal(await page.$$eval('#training svg', (s) => s.length), 3);

    const shot = join(tmpdir(), 'phoneside-report-screenshot.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);
    assert.deepEqual(foreign, [], 'no network requests');
    assert.deepEqual(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')), []);
  } finally {
    await browser.close();
    await rm(root, { recursive: true, force: true });
  }
});
