/** `phoneside models`: the trained models shipped with phoneside (as `backbones` lists backbones). */
import { listShippedModels, type ShippedModel } from '../infer/load.js';
import { MODELS } from '../options/infer.js';
import type { CliIO } from './options.js';
import { runVerb } from './parse.js';

export function cmdModels(args: string[], io: CliIO): Promise<number> {
  return runVerb(MODELS, args, io, async ({ values }) => {
    const models = await listShippedModels();
    if (values.json) {
      io.stdout.write(JSON.stringify(models, null, 2) + '\n');
      return 0;
    }
    printModels(models, io);
    return 0;
  });
}

function printModels(models: readonly ShippedModel[], io: CliIO): void {
  if (models.length === 0) {
    io.stdout.write('no models are shipped in this installation\n');
    return;
  }
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  for (const m of models) {
    const what = m.kind === 'ensemble' ? `ensemble of ${m.backbones.join(' + ')}` : m.backbones[0]!;
    const cv = m.groupCv
      ? `; unseen sources ${pct(m.groupCv.accuracy)} (worst ${m.groupCv.worstGroup.group} ${pct(m.groupCv.worstGroup.accuracy)}, ${m.groupCv.folds} folds)`
      : '';
    const th = Object.keys(m.thresholds).length ? `; abstains below ${Object.entries(m.thresholds).map(([c, t]) => `${c} ${t.toFixed(2)}`).join(', ')}` : '';
    io.stdout.write(`${m.isDefault ? '*' : ' '} ${m.name.padEnd(14)} ${what}${m.tta ? ', flip TTA' : ''}${cv}${th}\n`);
  }
}
