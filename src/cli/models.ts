/** `phoneside models`: the trained models shipped with phoneside (as `backbones` lists backbones). */
import { parseArgs } from 'node:util';
import { listShippedModels } from '../infer/load.js';
import type { CliIO } from './options.js';

export const MODELS_HELP = `phoneside models [--json]

Lists the trained models shipped with phoneside (names for --model): what each is, its accuracy on
sources it never saw (leave-one-source-out cross-validation), its worst source, and its abstain
thresholds. The default model is marked with *.
  --json                 print the list as JSON
`;

export async function cmdModels(args: string[], io: CliIO = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const { values: v, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (v.help) {
    io.stdout.write(MODELS_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    io.stderr.write(`phoneside: models takes no arguments (got ${positionals.join(' ')})\nRun 'phoneside models --help' for usage.\n`);
    return 2;
  }
  const models = await listShippedModels();
  if (v.json) {
    io.stdout.write(JSON.stringify(models, null, 2) + '\n');
    return 0;
  }
  if (models.length === 0) {
    io.stdout.write('no models are shipped in this installation\n');
    return 0;
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
  return 0;
}
