/**
 * Where tests find the project's read-only data: `../shared` next to the repository (the phones
 * data set and the MobileNetV2 ImageNet weights). Paths are computed from this file's location,
 * not the working directory. Tests that need the data skip without it (`skip: NO_DATA`); ResNet50's
 * weights come with npm ci and need nothing from here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** ../shared: read-only data shared by every checkout. */
export const SHARED = fileURLToPath(new URL('../../../shared', import.meta.url));
/** The phones data set: one folder per class (back/, front/, none/) and manifest.csv. */
export const DATA = join(SHARED, 'datasets', 'phones');
/** The data set's manifest (one row per image, with its `source` column for group CV). */
export const MANIFEST = join(DATA, 'manifest.csv');
/** The MobileNetV2 0.35 ImageNet weights (model.json + shards), laid out as a weights mirror. */
export const MOBILENET = join(SHARED, 'weights', 'mobilenet_v2_0.35_224');
/** Two real photos (a front, a back) that the fixture-model tests classify. */
export const IMAGES = ['front/html5_device_mockups__HtcOneM8_landscape_black.jpg', 'back/office_items__0VXFAIW8A261.jpg'].map((f) => join(DATA, f));

/** The phones photos are there. */
export const havePhotos = existsSync(join(DATA, 'front')) && existsSync(join(DATA, 'back')) && existsSync(join(DATA, 'none'));
/** The MobileNetV2 weights are there. */
export const haveWeights = existsSync(join(MOBILENET, 'model.json'));
/** Photos (IMAGES among them) and MobileNetV2 weights: what the real-data tests need. */
export const haveData = havePhotos && haveWeights && IMAGES.every((f) => existsSync(f));
/** `skip` option of tests that need haveData: false, or why they skip. */
export const NO_DATA: string | false = haveData ? false : 'needs ../shared (phones data set and MobileNetV2 weights)';
