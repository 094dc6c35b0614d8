// @ts-check
/**
 * The page: pick or drop photos, see each one's label. Two modes:
 * - "On the server" (default): each photo is posted to /v1/classify.
 * - "On this device": the page downloads the server's on-device model once and runs it here
 *   with onnxruntime-web; photos never leave the browser.
 * The choice is remembered (localStorage) and can be given in the URL: ?mode=device|server;
 * ?backend=wasm|webgpu forces onnxruntime-web's backend.
 */
import { classifyOnDevice, explainOnDevice, loadDeviceModel } from './device-mode.js';
import { classifyOnServer, serverModel, ServerError } from './server-mode.js';
import { Card, duration, el } from './ui.js';

/** @typedef {'server' | 'device'} Mode */
/** @typedef {import('./device-mode.js').DeviceModel} DeviceModel */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const fileInput = /** @type {HTMLInputElement} */ ($('file'));
const dropZone = $('drop');
const results = $('results');
const modelInfo = $('model-info');
const announcer = $('announce');
const summary = $('summary');
const clearButton = /** @type {HTMLButtonElement} */ ($('clear'));
const keyBox = $('api-key-box');
const keyForm = /** @type {HTMLFormElement} */ ($('api-key-form'));
const keyInput = /** @type {HTMLInputElement} */ ($('api-key'));
const modeRadios = /** @type {NodeListOf<HTMLInputElement>} */ (document.querySelectorAll('input[name="mode"]'));

const params = new URLSearchParams(location.search);
const backendParam = params.get('backend');
const preferBackend = backendParam === 'wasm' || backendParam === 'webgpu' ? backendParam : null;

/** @type {Mode} */
let mode = 'server';
/** @type {string | null} */
let apiKey = null;
/** @type {Promise<DeviceModel> | null} */
let deviceModel = null;
/** @type {{ id: string, version: string } | null} */
let serverModelInfo = null;
/** @type {Set<Card>} */
const cards = new Set();
/** Cards refused with 401, retried once a key is entered. @type {Set<Card>} */
const awaitingKey = new Set();

/** @param {string} key @param {string | null} [value] */
function stored(key, value) {
  try {
    if (value === undefined) return localStorage.getItem(key);
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* storage disabled (private mode): nothing is remembered */
  }
  return null;
}

/** @param {string} text */
function announce(text) {
  announcer.textContent = text;
}

/** A tiny concurrency limiter. @param {number} max */
function limiter(max) {
  let running = 0;
  /** @type {(() => void)[]} */
  const waiting = [];
  /**
   * @template T
   * @param {() => Promise<T>} job
   * @returns {Promise<T>}
   */
  return async (job) => {
    if (running >= max) await new Promise((r) => waiting.push(() => r(undefined)));
    running++;
    try {
      return await job();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}
const serverSlots = limiter(2);
const deviceSlots = limiter(1);

function showModelInfo() {
  modelInfo.dataset.mode = mode;
  if (mode === 'server') {
    delete modelInfo.dataset.backend;
    modelInfo.textContent = serverModelInfo
      ? `Model on the server: ${serverModelInfo.id} (version ${serverModelInfo.version}).`
      : 'Photos are sent to this server to be classified.';
    return;
  }
  modelInfo.textContent = 'Model on this device: loading…';
  deviceModel?.then(
    (m) => {
      if (mode !== 'device') return;
      modelInfo.dataset.backend = m.backend;
      modelInfo.dataset.loadMs = String(Math.round(m.loadMs));
      const threads = m.backend === 'wasm' ? `, ${m.threads} thread${m.threads === 1 ? '' : 's'}` : '';
      modelInfo.textContent = `Model on this device: ${m.info.id} (version ${m.info.version}) · backend ${m.backend}${threads} · loaded in ${duration(m.loadMs)}. Photos stay in this browser.`;
    },
    (/** @type {unknown} */ err) => {
      if (mode !== 'device') return;
      modelInfo.textContent = `The on-device model could not be loaded: ${err instanceof Error ? err.message : String(err)}`;
    },
  );
}

/** Loads the on-device model once (again after a failure). */
function getDeviceModel() {
  if (!deviceModel) {
    deviceModel = loadDeviceModel({
      prefer: preferBackend,
      onStatus: (text) => {
        if (mode === 'device') modelInfo.textContent = `Model on this device: ${text}`;
      },
    });
    deviceModel.catch(() => {
      deviceModel = null;
    });
  }
  return deviceModel;
}

/** @param {Mode} next */
function setMode(next) {
  mode = next;
  for (const r of modeRadios) r.checked = r.value === next;
  document.body.dataset.mode = next;
  stored('phoneside.mode', next);
  if (next === 'device') getDeviceModel().catch(() => {});
  showModelInfo();
}

function updateSummary() {
  /** @type {Record<string, number>} */
  const counts = {};
  let pending = 0;
  let failed = 0;
  for (const c of cards) {
    const s = c.root.dataset.state;
    if (s === 'pending') pending++;
    else if (s === 'error') failed++;
    else {
      const l = c.root.dataset.label ?? '?';
      counts[l] = (counts[l] ?? 0) + 1;
    }
  }
  const parts = Object.entries(counts).map(([l, n]) => `${l} ${n}`);
  if (failed) parts.push(`${failed} failed`);
  if (pending) parts.push(`${pending} in progress`);
  summary.textContent = cards.size ? `${cards.size} photo${cards.size === 1 ? '' : 's'}: ${parts.join(', ')}` : '';
  clearButton.hidden = cards.size === 0;
}

/** @param {Card} card */
async function classify(card) {
  const name = card.file.name;
  try {
    if (card.mode === 'device') {
      const p = await deviceSlots(async () => {
        if (!deviceModel) card.setPending('Loading the model…');
        const model = await getDeviceModel();
        card.setPending('Classifying on this device…');
        return classifyOnDevice(model, card.file);
      });
      card.setResult(p);
      card.offerWhy((say) =>
        deviceSlots(async () => {
          const model = await getDeviceModel();
          const r = await explainOnDevice(model, card.file, { onProgress: (done, total) => say(`Working out why… ${Math.round((100 * done) / total)}%`) });
          return { rgba: r.rgba, size: r.size, caption: `What made it say ${r.class}: red where hiding that part of the photo lowers the model's confidence most (occlusion, ${duration(r.ms)})` };
        }),
      );
    } else {
      const p = await serverSlots(async () => {
        card.setPending('Sending to the server…');
        return classifyOnServer(card.file, {
          apiKey,
          onWait: (s) => card.setPending(`The server is busy; trying again in ${s} s…`),
        });
      });
      if (p.model && typeof p.model.id === 'string' && !serverModelInfo) {
        serverModelInfo = { id: p.model.id, version: String(p.model.version ?? '') };
        if (mode === 'server') showModelInfo();
      }
      card.setResult(p);
    }
    announce(`${name}: ${card.root.dataset.label}`);
  } catch (err) {
    const retry = () => {
      card.setPending('Waiting…');
      updateSummary();
      void classify(card);
    };
    if (err instanceof ServerError && err.status === 401) {
      awaitingKey.add(card);
      keyBox.hidden = false;
      card.setError(`${err.message} — this server needs an API key: enter it above.`, { code: err.code });
      if (!apiKey) keyInput.focus();
    } else if (err instanceof ServerError) {
      const again = err.status === 0 || err.status === 503 || err.status >= 500 ? retry : undefined;
      card.setError(err.status ? `${err.message} (HTTP ${err.status})` : err.message, { retry: again, code: err.code });
    } else {
      const message = err instanceof Error ? err.message : String(err);
      const isDecode = err instanceof Error && err.name === 'ImageDecodeError';
      card.setError(isDecode ? message : `on-device classification failed: ${message}`, { retry: isDecode ? undefined : retry, code: isDecode ? 'decode' : 'device' });
    }
    announce(`${name}: failed`);
  } finally {
    updateSummary();
  }
}

/** @param {Iterable<File>} files */
function addFiles(files) {
  const list = Array.from(files);
  if (list.length === 0) return;
  for (const file of list) {
    const card = new Card(file, mode);
    cards.add(card);
    results.prepend(card.root);
    void classify(card);
  }
  updateSummary();
}

// Picking files (keyboard: the input itself is focusable; its label is the drop zone).
fileInput.addEventListener('change', () => {
  if (fileInput.files) addFiles(fileInput.files);
  fileInput.value = '';
});

// Dropping files anywhere on the page (so a near miss does not navigate away to the file).
/** @param {DragEvent} e */
const hasFiles = (e) => !!e.dataTransfer && Array.from(e.dataTransfer.types).includes('Files');
document.addEventListener('dragover', (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  dropZone.classList.add('dragging');
});
document.addEventListener('dragleave', (e) => {
  if (e.relatedTarget === null) dropZone.classList.remove('dragging');
});
document.addEventListener('drop', (e) => {
  if (!e.dataTransfer) return;
  e.preventDefault();
  dropZone.classList.remove('dragging');
  addFiles(e.dataTransfer.files);
});
// Pasting an image (e.g. a screenshot).
document.addEventListener('paste', (e) => {
  const files = Array.from(e.clipboardData?.files ?? []).filter((f) => f.type.startsWith('image/'));
  if (files.length) addFiles(files);
});

for (const r of modeRadios) {
  r.addEventListener('change', () => {
    if (r.checked) setMode(/** @type {Mode} */ (r.value));
  });
}

keyForm.addEventListener('submit', (e) => {
  e.preventDefault();
  apiKey = keyInput.value.trim() || null;
  const retry = [...awaitingKey];
  awaitingKey.clear();
  for (const card of retry) {
    card.setPending('Waiting…');
    void classify(card);
  }
  updateSummary();
});

clearButton.addEventListener('click', () => {
  for (const c of cards) c.dispose();
  cards.clear();
  awaitingKey.clear();
  updateSummary();
  announce('Results cleared');
  fileInput.focus();
});

/** Disables device mode when the server offers no on-device model. */
async function checkDeviceAvailable() {
  const radio = [...modeRadios].find((r) => r.value === 'device');
  if (!radio) return;
  let ok = false;
  try {
    const res = await fetch(new URL('models/device.json', document.baseURI).href, { headers: { accept: 'application/json' } });
    ok = res.ok;
  } catch {
    ok = false;
  }
  if (ok) return;
  radio.disabled = true;
  const note = el('span', 'mode-note', ' (this server offers no on-device model)');
  radio.parentElement?.append(note);
  if (mode === 'device') setMode('server');
}

function start() {
  const wanted = params.get('mode') ?? stored('phoneside.mode');
  setMode(wanted === 'device' ? 'device' : 'server');
  void checkDeviceAvailable();
  void serverModel().then((m) => {
    if (m && !serverModelInfo) serverModelInfo = m;
    if (mode === 'server') showModelInfo();
  });
  document.body.dataset.ready = 'true';
}

start();
