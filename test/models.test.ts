import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cmdModels } from '../src/cli/models.js';
import { listShippedModels } from '../src/infer/load.js';
import { fakeIO } from './helpers/cli.js';


test('listShippedModels reads bundles and ensembles from their manifests; other folders are ignored', async () => {
  const root = await mkdtemp(join(tmpdir(), 'phoneside-models-'));
  try {
    await mkdir(join(root, 'models', 'a'), { recursive: true });
    await writeFile(join(root, 'models', 'a', 'manifest.json'), JSON.stringify({ backbone: { id: 'resnet50' } }));
    await mkdir(join(root, 'models', 'ensemble'), { recursive: true });
    const pooled = { accuracy: 0.8, macroF1: 0.79, worstGroup: { group: 'g', accuracy: 0.6, images: 9 } };
    await writeFile(join(root, 'models', 'ensemble', 'ensemble.json'), JSON.stringify({ members: ['../a', '../a'], tta: 'hflip', thresholds: { x: 0.9 }, info: { groupCv: { pooled, folds: [1, 2, 3] } } }));
    await mkdir(join(root, 'models', 'notes'), { recursive: true });
    const list = await listShippedModels(root);
    assert.deepEqual(list.map((m) => [m.name, m.kind, m.isDefault, m.backbones, m.tta]), [
      ['a', 'bundle', false, ['resnet50'], false],
      ['ensemble', 'ensemble', true, ['resnet50', 'resnet50'], true],
    ]);
    assert.equal(list[0]!.groupCv, null);
    assert.deepEqual(list[1]!.groupCv, { ...pooled, folds: 3 });
    assert.deepEqual(list[1]!.thresholds, { x: 0.9 });
    assert.deepEqual(await listShippedModels(join(root, 'nowhere')), []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('phoneside models lists the shipped models, the default first-marked, with their group-CV figures', async () => {
  const f = fakeIO();
  assert.equal(await cmdModels([], f.io), 0);
  const lines = f.out().trim().split('\n');
  assert.ok(lines.some((l) => /^\* ensemble +ensemble of resnet50 \+ mobilenet_v2_0\.35; unseen sources \d+\.\d% \(worst \S+ \d+\.\d%, 12 folds\)/.test(l)), f.out());
  assert.ok(lines.some((l) => /^ {2}resnet50 +resnet50; unseen sources/.test(l)), f.out());
  const j = fakeIO();
  assert.equal(await cmdModels(['--json'], j.io), 0);
  const models = JSON.parse(j.out()) as { name: string; isDefault: boolean }[];
  assert.deepEqual(models.filter((m) => m.isDefault).map((m) => m.name), ['ensemble']);
  const bad = fakeIO();
  assert.equal(await cmdModels(['extra'], bad.io), 2);
  assert.match(bad.err(), /models takes no arguments/);
});
