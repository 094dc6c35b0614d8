/**
 * Occlusion sensitivity, for models whose graph Grad-CAM cannot read: a grey square slides over
 * the network's input, and a pixel's heat is how much the class's probability drops, on average,
 * when the squares covering it are grey. Pure arithmetic on the preprocessed input: the caller
 * runs the batches (through the classifier's own ONNX Runtime session on Node, or the device
 * session in the browser). The code is the web page's own (web/heatmap.js), so "Show why" in the
 * browser and `phoneside explain` compute the same map.
 */
export { fillOccluded, OCCLUSION_FRACTION, occlusionMap, occlusionPlan, type OcclusionPlan } from '../../web/heatmap.js';
