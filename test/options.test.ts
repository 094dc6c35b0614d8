/**
 * The declarative option tables: one table per verb gives the library's defaults and range checks,
 * the CLI parser (same checks, flag words), deprecated aliases, the help text and the README tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { inCliWords, libraryOptions, parseCommandLine } from '../src/cli/parse.js';
import { CommandUsageError } from '../src/cli/options.js';
import { exportClassifier } from '../src/infer/export.js';
import { predictFiles } from '../src/infer/predict.js';
import type { Classifier } from '../src/infer/classifier.js';
import { VERBS, EVALUATE, PREDICT, SERVE, TRAIN, CV, ENSEMBLE } from '../src/options/index.js';
import { helpText, markdownTable, readmeMarkers } from '../src/options/help.js';
import { defaultText, flagOf, OptionConflictError, OptionError, resolveOptions } from '../src/options/schema.js';
import type { TrainInput, TrainSettings } from '../src/options/train.js';
import { withOptionTables } from '../scripts/readme-options.js';
import { cmdServe } from '../src/cli/serve.js';
import { resolveServeConfig } from '../src/serve/config.js';
import { fakeIO, runCli } from './helpers/cli.js';
import { withEnv } from './helpers/env.js';

const parse = <T extends Parameters<typeof parseCommandLine>[0]>(verb: T, args: string[]) => {
  const f = fakeIO();
  return { ...parseCommandLine(verb, args, f.io), warnings: f.err() };
};

test('resolveOptions fills in the defaults, keeps extra keys and checks every given value', () => {
  const r: TrainSettings = resolveOptions(TRAIN.options, { lr: 0.01, headUnits: [64, 32] });
  assert.equal(r.lr, 0.01);
  assert.equal(r.batchSize, 32);
  assert.equal(r.optimizer, 'adamw');
  assert.equal(r.featureCache, true);
  assert.equal(r.topBlocks, undefined); // no fixed default: per backbone
  assert.deepEqual(r.headUnits, [64, 32]);
  const extra = resolveOptions(TRAIN.options, { callbacks: ['x'] } as TrainInput & { callbacks: string[] });
  assert.deepEqual(extra.callbacks, ['x']);
  const bad: [TrainInput, RegExp][] = [
    [{ batchSize: 1 }, /option batchSize must be an integer >= 2, got 1/],
    [{ lr: 0 }, /option lr must be a number > 0, got 0/],
    [{ dropout: 1 }, /option dropout must be a number in \[0, 1\), got 1/],
    [{ optimizer: 'sgd' as 'adam' }, /option optimizer must be one of adam, adamw, got 'sgd'/],
    [{ headUnits: [64] as unknown as [number, number] }, /option headUnits must be 2 integers >= 1/],
    [{ epochs: 2.5 }, /option epochs must be an integer >= 1, got 2.5/],
    [{ seed: Number.NaN }, /option seed must be an integer >= 0, got NaN/],
    [{ valGroups: [] }, /option valGroups must be a list of non-empty strings/],
  ];
  for (const [input, re] of bad) assert.throws(() => resolveOptions(TRAIN.options, input), (err: unknown) => err instanceof OptionError && re.test(err.message));
});

test('the library checks its options too: predictFiles and exportClassifier refuse bad values before any work', async () => {
  const clf = {} as Classifier; // never used: the options are checked first
  await assert.rejects(async () => {
    for await (const _ of predictFiles(clf, ['a.jpg'], { batchSize: 0 })) void _;
  }, /option batchSize must be an integer >= 1, got 0/);
  await assert.rejects(exportClassifier({ model: 'resnet50' }), (err: unknown) => err instanceof OptionConflictError && /export needs out/.test(err.message));
});

test('the CLI parser: kebab-case flags, typed values, negated and inverted booleans, lists and maps', () => {
  const t = parse(TRAIN, ['DATA', '--batch-size', '16', '--no-feature-cache', '--quiet', '--head-units', '512,128', '--val-groups', 'a, b', '--optimizer', 'adam']);
  assert.deepEqual(t.positionals, ['DATA']);
  assert.deepEqual(libraryOptions(TRAIN.options, t.values), {
    batchSize: 16,
    featureCache: false,
    verbose: false,
    headUnits: [512, 128],
    valGroups: ['a', 'b'],
    optimizer: 'adam',
  });
  const p = parse(PREDICT, ['--no-thresholds', '--weights', 'a=1', '--weights', 'b', 'x.jpg']);
  assert.equal(p.values.thresholds, false);
  assert.deepEqual(p.values.weights, ['a=1', 'b']);
  assert.equal(p.values.format, undefined); // CLI-only without a default: the command decides
  assert.equal('weights' in libraryOptions(PREDICT.options, p.values), false, 'CLI-only options stay out of the library options');
  const e = parse(ENSEMBLE, ['a', 'b', '--out', 'o', '--thresholds', 'back=0.9, front=0.8']);
  assert.deepEqual(e.values.thresholds, { back: 0.9, front: 0.8 });
  const ev = parse(EVALUATE, ['DATA']);
  assert.equal(ev.values.digits, 4, 'CLI-only defaults are filled in by the parser');
});

test('the CLI parser: bad values and wrong positionals are usage errors in flag words', () => {
  const cases: [Parameters<typeof parseCommandLine>[0], string[], RegExp][] = [
    [TRAIN, ['DATA', '--batch-size', '1'], /^--batch-size must be an integer >= 2, got '1'$/],
    [TRAIN, ['DATA', '--lr', 'fast'], /^--lr must be a number > 0, got 'fast'$/],
    [TRAIN, ['DATA', '--head-units', '512'], /^--head-units must be 2 integers >= 1, got '512'$/],
    [TRAIN, ['DATA', '--augment', 'wild'], /^--augment must be one of default, strong, none, got 'wild'$/],
    [TRAIN, ['DATA', '--out', ''], /^--out needs a value$/],
    [TRAIN, [], /^train takes exactly 1 DATA_DIR \(got none\)/],
    [PREDICT, ['--min-confidence', '2', 'x.jpg'], /^--min-confidence must be a number in \[0, 1\], got '2'$/],
    [SERVE, ['--port', '70000'], /^--port must be an integer in \[0, 65535\], got '70000'$/],
    [SERVE, ['extra'], /^serve takes no arguments/],
    [ENSEMBLE, ['a', '--out', 'o', '--thresholds', 'back'], /^--thresholds must be NAME=NUMBER pairs/],
  ];
  for (const [verb, args, re] of cases) {
    assert.throws(() => parse(verb, args), (err: unknown) => err instanceof CommandUsageError && re.test(err.message), args.join(' '));
  }
  assert.throws(() => parse(TRAIN, ['DATA', '--no-such-flag']), /Unknown option '--no-such-flag'/);
});

test('deprecated flags still work for one release, with a warning naming the new one', () => {
  const s = parse(SERVE, ['--queue', '3', '--timeout', '500', '--no-device-model']);
  assert.equal(s.values.queueSize, 3);
  assert.equal(s.values.timeoutMs, 500);
  assert.equal(s.values.deviceModel, 'none');
  assert.match(s.warnings, /--queue is deprecated and will be removed; use --queue-size/);
  assert.match(s.warnings, /--timeout is deprecated .* use --timeout-ms/);
  assert.match(s.warnings, /--no-device-model is deprecated .* use --device-model none/);
  const t = parse(TRAIN, ['DATA', '--no-augment']);
  assert.equal(t.values.augment, 'none');
  const e = parse(EVALUATE, ['DATA', '--split-file', 'split.json', '--subset', 'val']);
  assert.equal(e.values.split, 'split.json');
  assert.match(e.warnings, /--split-file is deprecated .* use --split/);
  assert.throws(() => parse(SERVE, ['--queue', '3', '--queue-size', '4']), /--queue and --queue-size say the same thing/);
  assert.equal(parse(SERVE, []).warnings, '', 'no warning without the old flag');
});

test('library option errors are worded as the flags of the verb that called', () => {
  const err = new OptionError('batchSize', 'an integer >= 2', 1);
  assert.equal(inCliWords(err, TRAIN.options)?.message, "--batch-size must be an integer >= 2, got '1'");
  const conflict = new OptionConflictError(['valGroups', 'groups'], ([a, b]) => `${a} needs ${b}`);
  assert.equal(conflict.message, 'valGroups needs groups');
  assert.equal(inCliWords(conflict, TRAIN.options)?.message, '--val-groups needs --groups');
  assert.equal(inCliWords(new OptionError('verbose', 'true or false', 'x'), TRAIN.options)?.message.startsWith('--quiet'), true);
  assert.equal(inCliWords(new Error('other'), TRAIN.options), undefined);
});

test('help lists every option of every verb with its default, from the table', () => {
  for (const verb of VERBS) {
    const help = helpText(verb);
    assert.ok(help.startsWith(`phoneside ${verb.name} `), verb.name);
    for (const [key, spec] of Object.entries(verb.options)) {
      if (spec.cli === false) continue;
      assert.ok(help.includes(`--${flagOf(key, spec)}`), `${verb.name} --${flagOf(key, spec)}`);
      const d = defaultText(spec);
      if (d !== undefined) assert.ok(help.replace(/\s+/g, ' ').includes(`default ${d}`), `${verb.name} ${key} default ${d}`);
    }
  }
});

test('phoneside VERB --help prints the table-made help; a bad value exits 2 in flag words', async () => {
  for (const verb of VERBS) {
    const r = await runCli([...verb.name.split(' '), '--help']);
    assert.equal(r.code, 0, verb.name);
    assert.equal(r.out, helpText(verb), verb.name);
  }
  const bad = await runCli(['predict', '--batch-size', '0', 'x.jpg']);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /^phoneside: --batch-size must be an integer >= 1, got '0'\nRun 'phoneside predict --help' for usage\.\n$/);
  const unknown = await runCli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown command 'frobnicate'/);
  const overview = await runCli(['help']);
  for (const verb of VERBS) assert.ok(overview.out.includes(`phoneside ${verb.name} `), verb.name);
});

test('README: every verb with options has its generated table, and the tables are up to date', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  for (const verb of VERBS.filter((v) => Object.keys(v.options).length > 1)) {
    const { begin, end } = readmeMarkers(verb.name);
    assert.ok(readme.includes(begin) && readme.includes(end), `README has the ${verb.name} markers`);
    assert.ok(readme.includes(markdownTable(verb)), `README's ${verb.name} table is the generated one (npm run readme:options)`);
  }
  assert.equal(withOptionTables(readme), readme, 'npm run readme:options changes nothing');
  // cv and train share the recipe: the same flags with the same words
  for (const key of ['backbone', 'epochs', 'lr', 'augment', 'views'] as const) assert.deepEqual(CV.options[key], TRAIN.options[key]);
});

// Compile-time: the library's types come from the table.
const typed: TrainInput = { optimizer: 'adam', headUnits: [512, 128], augment: 'strong' };
// @ts-expect-error: not a choice
const wrongChoice: TrainInput = { optimizer: 'sgd' };
// @ts-expect-error: json is a CLI-only option
const cliOnly: TrainInput = { json: true };
void [typed, wrongChoice, cliOnly];

test('the old library forms still work for one release, with a DeprecationWarning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const cfg = resolveServeConfig({ maxFileBytes: 512 * 1024, maxBodyBytes: 1024 * 1024 });
    assert.equal(cfg.maxFileBytes, 512 * 1024);
    assert.equal(cfg.maxBodyBytes, 1024 * 1024);
    await assert.rejects(exportClassifier('no-such-model', 'x.onnx'), /no-such-model is not a phoneside model/);
    await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
    assert.ok(warnings.some((w) => /maxFileBytes is deprecated .* use maxImageMb/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /exportClassifier\(model, out, options\) is deprecated/.test(w)), warnings.join('\n'));
  } finally {
    process.off('warning', onWarning);
  }
});

test('serve: --weights and --device-weights may not give two folders for one backbone', async () => {
  await withEnv({}, async () => {
    const f = fakeIO();
    const code = await cmdServe(['--model', 'resnet50', '--weights', 'mobilenet_v2_0.35=/a', '--device-weights', 'mobilenet_v2_0.35=/b'], f.io);
    assert.equal(code, 2);
    assert.match(f.err(), /--weights and --device-weights give two folders for backbone mobilenet_v2_0\.35/);
  });
});
