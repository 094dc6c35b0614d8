/** The options of `phoneside review`: suspected label errors and cross-class duplicates of a data set. */
import { ENV_OPTIONS, JSON_OPTION } from './common.js';
import { defineVerb, type OptionsInput, type ResolvedOptions } from './schema.js';
import { CV, RECIPE_OPTIONS } from './train.js';

const CROSS_VALIDATION = 'Cross-validation (without --from-cv)';

export const REVIEW = defineVerb({
  name: 'review',
  usage: 'DATA_DIR (--from-cv CV.json | --groups SPEC) --out DIR [options]   (or: review DATA_DIR --apply review.csv [--dry-run])',
  summary: 'images whose labels look wrong, and duplicates across classes (HTML page + editable CSV; --apply moves files)',
  description:
    "Ranks the images of DATA_DIR by how strongly out-of-fold predictions (each image scored by a model that never trained on it) disagree with their labels, confident-learning style: per-class thresholds are the mean out-of-fold probability of each class over its images, and an image is a suspect when its label's probability is below that label's threshold while another class's is at or above its own. Also lists pictures filed under two classes (byte-identical, or near-identical by perceptual hash) and copies inside a class.\nWrites OUT/review.html (suspects most suspicious first, with picture, labels, probabilities and source; the duplicates), OUT/review.csv (path,given,suggested,p_given,p_suggested,action,reason,sha256: fill in action with relabel:<class>, drop or keep) and OUT/review.json (schema phoneside.review/1).\nThe out-of-fold predictions come from a cv report (--from-cv, e.g. models/ensemble/cv.json) or from a group cross-validation run now (--groups, with train's recipe options; minutes).\n--apply review.csv carries out the decisions: relabel moves DATA_DIR/<given>/x.jpg to DATA_DIR/<class>/x.jpg, drop moves it to DATA_DIR/.dropped/<given>/x.jpg; nothing is deleted or overwritten (a taken name gets -1, -2...), every move is appended to DATA_DIR/_review-log.jsonl, manifest.csv follows the moves, rows whose file changed since the review are refused, and a second --apply does nothing twice.",
  footer: 'Exit status: 0 when done, 1 when a failure or a refused --apply row, 2 for usage errors (and a review.csv that cannot be read as one).',
  positionals: { min: 1, max: 1, name: 'DATA_DIR' },
  options: {
    fromCv: {
      kind: 'string',
      group: 'Review',
      placeholder: 'FILE',
      help: "a cv report (cv.json or its folder, e.g. models/ensemble/cv.json) whose out-of-fold predictions to use; its paths are taken relative to DATA_DIR",
    },
    out: { kind: 'string', short: 'o', group: 'Review', placeholder: 'DIR', help: 'where to write review.html, review.csv and review.json (required unless --apply); a review.csv there with decisions in it is never overwritten' },
    top: { kind: 'integer', group: 'Review', min: 1, default: 50, help: 'suspects shown on the page (with heat maps) and printed (review.csv and review.json list them all)' },
    rankBy: {
      kind: 'choice',
      group: 'Review',
      choices: ['margin', 'self-confidence'],
      default: 'margin',
      help: 'order of the suspects: margin, p(suggested) - p(given), largest first; or self-confidence, p(given), smallest first',
    },
    maxDistance: { kind: 'integer', group: 'Review', min: 0, max: 64, default: 4, help: 'near-duplicates: the largest perceptual-hash distance (bits of 64) counted as the same picture' },
    heatmaps: {
      kind: 'boolean',
      group: 'Review',
      default: true,
      help: 'draw where the model looks for the suggested class over each suspect shown (Grad-CAM or occlusion, about a second per image); needs a model: --model, or the model folder holding the --from-cv report (--no-heatmaps skips them)',
    },
    model: {
      kind: 'string',
      short: 'm',
      group: 'Review',
      placeholder: 'MODEL',
      defaultText: 'the folder of the --from-cv report, when it is a model (e.g. models/ensemble)',
      help: 'the model for the heat maps (shipped name, run or bundle folder, ensemble, .onnx)',
    },
    apply: { kind: 'string', cli: 'only', group: 'Apply', placeholder: 'FILE', help: 'carry out the decisions of an edited review.csv in DATA_DIR (moves files; see above)' },
    dryRun: { kind: 'boolean', cli: 'only', group: 'Apply', help: 'with --apply: print the moves without making them' },
    ...JSON_OPTION,
    groups: { ...CV.options.groups, group: CROSS_VALIDATION },
    folds: { ...CV.options.folds, group: CROSS_VALIDATION },
    ...RECIPE_OPTIONS,
    ...ENV_OPTIONS,
  },
});

export type ReviewInput = OptionsInput<typeof REVIEW.options>;
export type ReviewSettings = ResolvedOptions<typeof REVIEW.options>;
