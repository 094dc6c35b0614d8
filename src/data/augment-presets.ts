/** Named augmentation strengths, as `--augment NAME` selects them. */
import { DEFAULT_AUGMENT, IDENTITY_AUGMENT, STRONG_AUGMENT, type AugmentConfig } from './augment.js';

export const AUGMENT_PRESETS: Readonly<Record<'default' | 'strong' | 'none', Readonly<AugmentConfig>>> = {
  default: DEFAULT_AUGMENT,
  strong: STRONG_AUGMENT,
  none: IDENTITY_AUGMENT,
};

export type AugmentPreset = keyof typeof AUGMENT_PRESETS;
