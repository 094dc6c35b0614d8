// @ts-check
/**
 * One result card per image: thumbnail, file name, label (distinct for 'uncertain'), a bar per
 * class with its percentage, where it ran and how long it took, or the error. State and the raw
 * answer (the Prediction's fields) are also kept in data-* attributes (data-state, data-label,
 * data-predicted, data-probabilities), which the end-to-end test reads.
 */

/** @typedef {import('./device-mode.js').Prediction} Prediction */

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** @param {number} p */
export function percent(p) {
  const v = p * 100;
  return `${v >= 99.95 || v < 0.05 ? v.toFixed(0) : v.toFixed(1)}%`;
}

/** @param {number} ms */
export function duration(ms) {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.max(1, Math.round(ms))} ms`;
}

/** A CSS-safe token for a class name (labels come from the model). @param {string} s */
function token(s) {
  return s.toLowerCase().replace(/[^a-z0-9_-]+/g, '-');
}

export const MODE_TEXT = { server: 'on the server', device: 'on this device' };

export class Card {
  /**
   * @param {File} file
   * @param {'server' | 'device'} mode
   */
  constructor(file, mode) {
    this.file = file;
    this.mode = mode;
    this.url = URL.createObjectURL(file);
    this.root = el('li', 'card');
    this.root.dataset.mode = mode;
    const thumb = el('img', 'thumb');
    thumb.src = this.url;
    thumb.alt = '';
    thumb.decoding = 'async';
    thumb.addEventListener('error', () => thumb.classList.add('thumb-broken'));
    const body = el('div', 'card-body');
    this.name = el('p', 'name', file.name || '(unnamed)');
    this.name.title = file.name;
    this.label = el('p', 'label');
    this.bars = el('ul', 'bars');
    this.meta = el('p', 'meta');
    this.error = el('p', 'error');
    this.error.hidden = true;
    this.actions = el('div', 'actions');
    /** @type {HTMLElement | undefined} the "Show why" heat map, once asked for */
    this.whyFigure = undefined;
    body.append(this.name, this.label, this.bars, this.meta, this.error, this.actions);
    this.root.append(thumb, body);
    this.setPending('Waiting…');
  }

  /** @param {string} text */
  setPending(text) {
    this.root.dataset.state = 'pending';
    this.root.setAttribute('aria-busy', 'true');
    this.label.className = 'label label-pending';
    this.label.textContent = text;
  }

  /**
   * @param {Prediction & { serverMs?: number }} p
   */
  setResult(p) {
    this.root.dataset.state = 'done';
    this.root.dataset.label = p.label;
    this.root.dataset.predicted = p.predicted;
    this.root.dataset.probabilities = JSON.stringify(p.probabilities);
    this.root.removeAttribute('aria-busy');
    this.error.hidden = true;
    this.actions.replaceChildren();
    const uncertain = p.label === 'uncertain';
    this.label.className = `label ${uncertain ? 'label-uncertain' : `label-class label-${token(p.label)}`}`;
    this.label.replaceChildren(el('span', 'label-text', p.label));
    if (uncertain) this.label.append(el('span', 'label-guess', ` best guess ${p.predicted}, ${percent(p.confidence)}`));
    this.bars.replaceChildren();
    const entries = Object.entries(p.probabilities);
    for (const [cls, prob] of entries) {
      const li = el('li', `bar-row${cls === p.predicted ? ' bar-top' : ''}`);
      const bar = el('span', 'bar');
      bar.setAttribute('aria-hidden', 'true');
      const fill = el('span', `bar-fill bar-${token(cls)}`);
      fill.style.width = `${Math.max(0, Math.min(1, prob)) * 100}%`;
      bar.append(fill);
      li.append(el('span', 'bar-class', cls), bar, el('span', 'bar-pct', percent(prob)));
      this.bars.append(li);
    }
    const server = p.serverMs !== undefined ? ` (model ${duration(p.serverMs)})` : '';
    const model = p.inferenceMs !== undefined ? ` (model ${duration(p.inferenceMs)})` : '';
    this.meta.textContent = `${MODE_TEXT[this.mode]} · ${duration(p.ms)}${server}${model}`;
  }

  /**
   * @param {string} message
   * @param {{ retry?: () => void, code?: string }} [opts]
   */
  setError(message, opts = {}) {
    this.root.dataset.state = 'error';
    if (opts.code) this.root.dataset.error = opts.code;
    this.root.removeAttribute('aria-busy');
    this.label.className = 'label label-error';
    this.label.textContent = 'failed';
    this.bars.replaceChildren();
    this.meta.textContent = MODE_TEXT[this.mode];
    this.error.hidden = false;
    this.error.textContent = message;
    this.actions.replaceChildren();
    if (opts.retry) {
      const b = el('button', 'retry', 'Retry');
      b.type = 'button';
      b.addEventListener('click', opts.retry, { once: true });
      this.actions.append(b);
    }
  }

  /**
   * Offers "Show why" under the result: on click, `explain` works out the heat map (reporting
   * progress through `say`) and the card shows it; a failure says why and offers the button again.
   * The state is kept in data-why (pending, done, error) for the end-to-end test.
   * @param {(say: (text: string) => void) => Promise<{ rgba: Uint8Array, size: number, caption: string }>} explain
   */
  offerWhy(explain) {
    // Styled like the Retry button; the figure's few rules are inline so the page's CSS stays as it is.
    const button = el('button', 'retry why-button', 'Show why');
    button.type = 'button';
    button.addEventListener('click', async () => {
      button.disabled = true;
      button.textContent = 'Working out why…';
      this.root.dataset.why = 'pending';
      this.whyFigure?.remove();
      try {
        const r = await explain((text) => (button.textContent = text));
        const canvas = el('canvas', 'why-map');
        canvas.style.cssText = 'display:block;width:100%;max-width:224px;height:auto;border-radius:6px';
        canvas.width = r.size;
        canvas.height = r.size;
        const ctx = canvas.getContext('2d');
        if (!ctx) throw new Error('this browser cannot draw on a canvas');
        ctx.putImageData(new ImageData(new Uint8ClampedArray(r.rgba), r.size, r.size), 0, 0);
        canvas.setAttribute('role', 'img');
        canvas.setAttribute('aria-label', r.caption);
        this.whyFigure = el('figure', 'why');
        this.whyFigure.style.margin = '.5rem 0 0';
        this.whyFigure.append(canvas, el('figcaption', 'meta', r.caption));
        this.actions.after(this.whyFigure);
        this.root.dataset.why = 'done';
        button.remove();
      } catch (err) {
        this.root.dataset.why = 'error';
        this.whyFigure = el('figure', 'why why-error');
        this.whyFigure.style.margin = '.5rem 0 0';
        this.whyFigure.append(el('figcaption', 'error', `could not work out why: ${err instanceof Error ? err.message : String(err)}`));
        this.actions.after(this.whyFigure);
        button.disabled = false;
        button.textContent = 'Show why';
      }
    });
    this.actions.append(button);
  }

  dispose() {
    URL.revokeObjectURL(this.url);
    this.root.remove();
  }
}
