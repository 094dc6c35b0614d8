/**
 * Per-class thresholds fitted to predictions (src/eval/thresholds.ts): a hand-made case with a
 * known optimum that per-class fitting misses, the exact optimum against a brute-force search
 * over every combination of candidate thresholds, ties, confidences of exactly 1, all-correct and
 * all-wrong inputs, minSupport, and leave-one-group-out figures recomputed by hand.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyThresholds, crossFittedThresholds, fitThresholds, type GroupedThresholdRow, type ThresholdRow } from '../src/eval/thresholds.js';
import { createRng } from '../src/util/rng.js';

const AB = ['a', 'b'];
/** A two-class row whose top class is `top` at confidence `p`, truly `label`. */
const row2 = (top: 'a' | 'b', p: number, label: 'a' | 'b'): ThresholdRow => ({ label: AB.indexOf(label), probabilities: top === 'a' ? [p, 1 - p] : [1 - p, p] });
const close = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

/** Checks the fit's own figures against applyThresholds and the budget. */
function consistent(classes: string[], rows: ThresholdRow[], fit: ReturnType<typeof fitThresholds>): void {
  const applied = applyThresholds(classes, rows, fit.thresholds);
  assert.deepEqual(applied, { coverage: fit.coverage, errorRate: fit.errorRate, answered: fit.answered, errors: fit.errors, total: fit.total });
  const sums = Object.values(fit.perClass).reduce((s, c) => ({ answered: s.answered + c.answered, errors: s.errors + c.errors }), { answered: 0, errors: 0 });
  assert.deepEqual(sums, { answered: fit.answered, errors: fit.errors });
  for (const t of Object.values(fit.thresholds)) assert.ok(t >= 0 && t <= 1, `threshold ${t}`);
  if (fit.feasible) assert.ok(fit.errors <= fit.maxErrorRate * fit.answered + 1e-9, `${fit.errors} errors of ${fit.answered}`);
}

describe('fitThresholds', () => {
  test('hand-made example: the joint optimum, which per-class fitting misses', () => {
    // a: 0.9 ok, 0.8 ok, 0.7 wrong, 0.6 ok, 0.58 ok -> prefixes (answered, errors): (1,0) (2,0) (3,1) (4,1) (5,1)
    // b: 0.95 0.85 0.75 0.72 ok, 0.65 wrong, 0.55 ok -> (1..4,0) (5,1) (6,1)
    // At 15%: 11 answered with 2 errors is 18%; 10 needs at most 1 error, which no split gives;
    // 9 = all of a (1 error) + b's top 4 is the only way. Per class at 15% each: a 2 + b 4 = 6.
    const rows = [
      row2('a', 0.9, 'a'), row2('a', 0.8, 'a'), row2('a', 0.7, 'b'), row2('a', 0.6, 'a'), row2('a', 0.58, 'a'),
      row2('b', 0.95, 'b'), row2('b', 0.85, 'b'), row2('b', 0.75, 'b'), row2('b', 0.72, 'b'), row2('b', 0.65, 'a'), row2('b', 0.55, 'b'),
    ];
    const fit = fitThresholds(AB, rows, { maxErrorRate: 0.15 });
    assert.equal(fit.answered, 9);
    assert.equal(fit.errors, 1);
    assert.equal(fit.total, 11);
    close(fit.coverage, 9 / 11, 'coverage');
    close(fit.errorRate, 1 / 9, 'error rate');
    close(fit.thresholds['a']!, 0.58, 'a: every row answered, threshold at the last accepted value');
    close(fit.thresholds['b']!, (0.72 + 0.65) / 2, 'b: midway between 0.72 (accepted) and 0.65 (refused)');
    assert.deepEqual(fit.perClass['a'], { threshold: fit.thresholds['a'], rows: 5, answered: 5, errors: 1, precision: 0.8 });
    assert.deepEqual(fit.perClass['b'], { threshold: fit.thresholds['b'], rows: 6, answered: 4, errors: 0, precision: 1 });
    assert.deepEqual(fit.neverAnswered, []);
    assert.equal(fit.feasible, true);
    assert.equal(fit.maxErrorRate, 0.15);
    consistent(AB, rows, fit);
    // At 20% everything fits (2 of 11 = 18%).
    const loose = fitThresholds(AB, rows, { maxErrorRate: 0.2 });
    assert.equal(loose.answered, 11);
    close(loose.thresholds['b']!, 0.55, 'b at 20%');
  });

  test('the optimum equals a brute-force search over every combination of thresholds (K=3, 30 rows)', () => {
    const classes = ['back', 'front', 'none'];
    for (let seed = 1; seed <= 12; seed++) {
      const rng = createRng(seed);
      const rows: ThresholdRow[] = Array.from({ length: 30 }, () => {
        const label = rng.int(0, 3);
        const logits = [0, 1, 2].map((c) => rng.uniform(-1, 1) + (c === label ? rng.uniform(0, 2.5) : 0));
        const m = Math.max(...logits);
        const ex = logits.map((l) => Math.exp(l - m));
        const s = ex.reduce((a, b) => a + b, 0);
        // Two decimals: ties in confidence (and in the top class) happen.
        return { label, probabilities: ex.map((e) => Math.round((e / s) * 50) / 50) };
      });
      // Top class by the first maximum (decide()'s rule), confidence, correctness.
      const scored = rows.map((r) => {
        let top = 0;
        for (let i = 1; i < 3; i++) if (r.probabilities[i]! > r.probabilities[top]!) top = i;
        return { top, conf: r.probabilities[top]!, ok: top === r.label };
      });
      const options = [0, 1, 2].map((k) => [...new Set(scored.filter((s) => s.top === k).map((s) => s.conf)), 1]);
      for (const pct of [0, 5, 10, 20, 35]) {
        for (const minSupport of [1, 3]) {
          let bestA = 0;
          let bestE = 0;
          for (const t0 of options[0]!) {
            for (const t1 of options[1]!) {
              for (const t2 of options[2]!) {
                const t = [t0, t1, t2];
                const per = [0, 1, 2].map((k) => scored.filter((s) => s.top === k && s.conf >= t[k]!));
                if (per.some((p) => p.length > 0 && p.length < minSupport)) continue;
                const A = per.reduce((n, p) => n + p.length, 0);
                const E = per.reduce((n, p) => n + p.filter((s) => !s.ok).length, 0);
                if (E * 100 > pct * A) continue;
                if (A > bestA || (A === bestA && E < bestE)) [bestA, bestE] = [A, E];
              }
            }
          }
          const fit = fitThresholds(classes, rows, { maxErrorRate: pct / 100, minSupport });
          const what = `seed ${seed}, ${pct}%, minSupport ${minSupport}`;
          assert.equal(fit.feasible, true, what);
          assert.equal(fit.answered, bestA, what);
          assert.equal(fit.errors, bestE, what);
          assert.ok(fit.errors * 100 <= pct * fit.answered, what);
          for (const c of Object.values(fit.perClass)) assert.ok(c.answered === 0 || c.answered >= minSupport, what);
          consistent(classes, rows, fit);
        }
      }
    }
  });

  test('equal confidences are answered or refused together', () => {
    // 0.9 ok, 0.8 ok, then three at 0.6 of which two are wrong: 3 of 5 at 0.6 cannot be taken alone.
    const rows = [row2('a', 0.9, 'a'), row2('a', 0.8, 'a'), row2('a', 0.6, 'a'), row2('a', 0.6, 'b'), row2('a', 0.6, 'b')];
    const fit = fitThresholds(AB, rows, { maxErrorRate: 0.3 });
    assert.equal(fit.answered, 2);
    assert.equal(fit.errors, 0);
    close(fit.thresholds['a']!, 0.7, 'midway between 0.8 and 0.6');
    assert.equal(fit.thresholds['b'], 1, 'no row has b on top');
    assert.deepEqual(fit.neverAnswered, ['b']);
    consistent(AB, rows, fit);
    const wide = fitThresholds(AB, rows, { maxErrorRate: 0.4 });
    assert.equal(wide.answered, 5);
    close(wide.thresholds['a']!, 0.6, 'all answered');
    consistent(AB, rows, wide);
    // A tie between classes goes to the first, as in decide().
    const tie = fitThresholds(AB, [{ label: 1, probabilities: [0.5, 0.5] }], { maxErrorRate: 0 });
    assert.equal(tie.perClass['a']!.rows, 1);
    assert.equal(tie.answered, 0);
  });

  test('all correct: everything answered; all wrong: nothing, every class at threshold 1', () => {
    const right = [row2('a', 0.9, 'a'), row2('a', 0.55, 'a'), row2('b', 0.7, 'b'), row2('b', 0.65, 'b')];
    const r = fitThresholds(AB, right, { maxErrorRate: 0 });
    assert.equal(r.coverage, 1);
    assert.equal(r.errorRate, 0);
    assert.deepEqual(r.thresholds, { a: 0.55, b: 0.65 });
    assert.deepEqual(r.neverAnswered, []);
    consistent(AB, right, r);

    const wrong = [row2('a', 0.9, 'b'), row2('a', 0.55, 'b'), row2('b', 0.7, 'a')];
    const w = fitThresholds(AB, wrong, { maxErrorRate: 0.02 });
    assert.equal(w.answered, 0);
    assert.equal(w.coverage, 0);
    assert.equal(w.errorRate, 0);
    assert.deepEqual(w.thresholds, { a: 1, b: 1 });
    assert.deepEqual(w.neverAnswered, ['a', 'b']);
    assert.equal(w.perClass['a']!.precision, null);
    assert.equal(w.feasible, true);
    consistent(AB, wrong, w);
    assert.equal(fitThresholds(AB, wrong, { maxErrorRate: 1 }).answered, 3);

    const none = fitThresholds(AB, [], { maxErrorRate: 0.02 });
    assert.deepEqual({ answered: none.answered, total: none.total, coverage: none.coverage }, { answered: 0, total: 0, coverage: 0 });
    assert.deepEqual(none.thresholds, { a: 1, b: 1 });
  });

  test('a wrong answer at probability exactly 1 cannot be refused: reported as infeasible', () => {
    const rows = [{ label: 1, probabilities: [1, 0] }, row2('a', 0.8, 'a'), row2('b', 0.9, 'b')];
    const fit = fitThresholds(AB, rows, { maxErrorRate: 0.3 });
    // 1 wrong at p=1 is forced; with the two others answered it is 1 of 3 = 33% > 30%, with one 50%.
    assert.equal(fit.feasible, false);
    assert.deepEqual(fit.thresholds, { a: 1, b: 1 });
    assert.equal(fit.answered, 1);
    assert.equal(fit.errors, 1);
    consistent(AB, rows, fit);
    const ok = fitThresholds(AB, rows, { maxErrorRate: 0.34 });
    assert.equal(ok.feasible, true);
    assert.equal(ok.answered, 3);
    consistent(AB, rows, ok);
  });

  test('minSupport: a class answered on fewer fitting rows gets threshold 1', () => {
    const rows = [row2('a', 0.9, 'a'), row2('a', 0.6, 'b'), row2('b', 0.9, 'b'), row2('b', 0.8, 'b'), row2('b', 0.7, 'b')];
    assert.equal(fitThresholds(AB, rows, { maxErrorRate: 0 }).perClass['a']!.answered, 1);
    const fit = fitThresholds(AB, rows, { maxErrorRate: 0, minSupport: 2 });
    assert.equal(fit.thresholds['a'], 1);
    assert.deepEqual(fit.neverAnswered, ['a']);
    assert.equal(fit.perClass['b']!.answered, 3);
    assert.equal(fit.minSupport, 2);
  });

  test('bad input is refused', () => {
    assert.throws(() => fitThresholds(AB, [], { maxErrorRate: 1.5 }), RangeError);
    assert.throws(() => fitThresholds(AB, [], { maxErrorRate: Number.NaN }), RangeError);
    assert.throws(() => fitThresholds(AB, [], { maxErrorRate: 0.1, minSupport: 0 }), RangeError);
    assert.throws(() => fitThresholds(AB, [{ label: 2, probabilities: [0.5, 0.5] }], { maxErrorRate: 0.1 }), /label 2/);
    assert.throws(() => applyThresholds(AB, [{ label: 0, probabilities: [1] }], {}), /1 probabilities for 2 classes/);
  });
});

describe('applyThresholds', () => {
  test('the rule of decide(): answered at or above the threshold of the top class', () => {
    const rows = [row2('a', 0.7, 'a'), row2('a', 0.6, 'b'), row2('b', 0.8, 'a'), row2('b', 0.55, 'b')];
    assert.deepEqual(applyThresholds(AB, rows, { a: 0.6, b: 0.9 }), { coverage: 0.5, errorRate: 0.5, answered: 2, errors: 1, total: 4 });
    assert.deepEqual(applyThresholds(AB, rows, { a: 0.61 }), { coverage: 0.75, errorRate: 1 / 3, answered: 3, errors: 1, total: 4 });
    assert.deepEqual(applyThresholds(AB, rows, {}), { coverage: 1, errorRate: 0.5, answered: 4, errors: 2, total: 4 });
    assert.deepEqual(applyThresholds(AB, [], {}), { coverage: 0, errorRate: 0, answered: 0, errors: 0, total: 0 });
  });
});

describe('crossFittedThresholds', () => {
  test('leave-one-group-out figures, recomputed by hand', () => {
    const g = (group: string, r: ThresholdRow): GroupedThresholdRow => ({ ...r, group });
    const rows = [
      g('g1', row2('a', 0.9, 'a')), g('g1', row2('a', 0.7, 'b')), g('g1', row2('b', 0.8, 'b')),
      g('g2', row2('a', 0.85, 'a')), g('g2', row2('a', 0.6, 'a')), g('g2', row2('b', 0.9, 'a')), g('g2', row2('b', 0.7, 'b')),
    ];
    const cf = crossFittedThresholds(AB, rows, { maxErrorRate: 0 });
    // Held-out g1, fitted on g2: a both right -> 0.6; b 0.9 wrong on top -> nothing answered -> 1.
    // On g1: a 0.9 answered right, a 0.7 answered wrong, b 0.8 < 1 refused -> 2 answered, 1 error of 3.
    const g1 = cf.groups['g1']!;
    close(g1.thresholds['a']!, 0.6, 'g1 a');
    assert.equal(g1.thresholds['b'], 1);
    assert.deepEqual({ answered: g1.answered, errors: g1.errors, total: g1.total }, { answered: 2, errors: 1, total: 3 });
    assert.deepEqual(g1.fit, { coverage: 0.5, errorRate: 0, answered: 2, errors: 0, total: 4 });
    // Held-out g2, fitted on g1: a 0.9 right, 0.7 wrong -> midway 0.8; b 0.8 right -> 0.8.
    // On g2: a 0.85 answered right, a 0.6 refused, b 0.9 answered wrong, b 0.7 refused -> 2, 1 of 4.
    const g2 = cf.groups['g2']!;
    close(g2.thresholds['a']!, 0.8, 'g2 a');
    close(g2.thresholds['b']!, 0.8, 'g2 b');
    assert.deepEqual({ answered: g2.answered, errors: g2.errors, total: g2.total }, { answered: 2, errors: 1, total: 4 });
    assert.deepEqual(g2.fit, { coverage: 2 / 3, errorRate: 0, answered: 2, errors: 0, total: 3 });
    // Pooled: 4 answered of 7, 2 wrong -- far from the 0% each fit promised on its own rows.
    assert.deepEqual({ answered: cf.answered, errors: cf.errors, total: cf.total }, { answered: 4, errors: 2, total: 7 });
    close(cf.coverage, 4 / 7, 'pooled coverage');
    assert.equal(cf.errorRate, 0.5);
    assert.equal(cf.maxErrorRate, 0);
    assert.deepEqual(Object.keys(cf.groups), ['g1', 'g2']);
  });

  test('needs two groups', () => {
    assert.throws(() => crossFittedThresholds(AB, [{ ...row2('a', 0.9, 'a'), group: 'only' }], { maxErrorRate: 0.1 }), /at least 2 groups/);
  });
});
