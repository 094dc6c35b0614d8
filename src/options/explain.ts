/** The options of `phoneside explain`: heat maps of why a model answered what it did. */
import { ENV_OPTIONS, JSON_OPTION, MODEL_OPTION, THREADS_OPTION, TTA_OPTION } from './common.js';
import { defineVerb } from './schema.js';

export const EXPLAIN = defineVerb({
  name: 'explain',
  usage: '[--model MODEL] IMAGE... --out DIR [options]',
  summary: 'heat maps of what in each photo made the model answer (Grad-CAM or occlusion), as PNGs',
  description:
    "For each image (files, folders, globs, as in predict), writes DIR/<name>.<class>.png: the photo as the model saw it with a heat map of the evidence for the predicted class (--all-classes: for each class) blended over it. Grad-CAM on the last convolutional block (gradients of the class's log-probability by finite differences through the model's head) where the model's graph allows it, occlusion sensitivity (a grey square slid over the photo, heat = drop in the class's probability) where it does not; each line names the method used. Prints one line per image: path, label, confidence, method, files written.",
  footer: 'Exit status: 0 when every image was explained, 1 when any failed (a line says why), 2 for usage errors.',
  positionals: { min: 1, max: Infinity, name: 'IMAGE' },
  options: {
    ...MODEL_OPTION,
    out: { kind: 'string', short: 'o', cli: 'only', placeholder: 'DIR', help: 'folder for the PNG files (required; made if missing)' },
    allClasses: { kind: 'boolean', cli: 'only', default: false, help: 'a map for every class, not only the predicted one' },
    method: {
      kind: 'choice',
      choices: ['auto', 'grad-cam', 'occlusion'],
      default: 'auto',
      help: "auto: Grad-CAM when the model's graph allows it, occlusion otherwise; grad-cam: fail when it does not",
    },
    size: { kind: 'integer', cli: 'only', min: 16, max: 4096, defaultText: "the model's input size", help: 'side of the PNG files in pixels' },
    overwrite: { kind: 'boolean', cli: 'only', default: false, help: 'replace PNG files already in DIR (otherwise such an image fails with a message)' },
    ...TTA_OPTION,
    ...THREADS_OPTION,
    ...JSON_OPTION,
    ...ENV_OPTIONS,
  },
});
