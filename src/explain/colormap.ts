/**
 * Heat map over a photo: a blue-green-yellow-red colour scale, blended more strongly where the
 * heat is higher so the photo stays visible where there is none. The web page's own code
 * (web/heatmap.js), so the page's "Show why" and the PNGs of `phoneside explain` look the same.
 */
export { blendHeat, heatColour } from '../../web/heatmap.js';
