'use strict';
// Measuring on a shared, noisy machine: every case of a group is measured in
// the same rounds, interleaved batch by batch, so that whatever else the
// machine does at a moment hits all of them alike. A round's figure for a
// case is its best batch (a batch that was preempted is discarded); the
// reported figure is the median over rounds, and a ratio between two cases is
// the median of their per-round ratios (each pair measured side by side).

/** Median of an array of numbers (NaN when empty). */
function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const now = () => process.hrtime.bigint();
const CALIBRATION_SAMPLES = 3;

/**
 * One batch of a case. A case has either
 *   loop(n)   runs n operations (sync or async), timed here; result ns per op
 *   timed(n)  runs n operations somewhere else, resolves to elapsed ns
 *   rate()    runs for a while, resolves to operations per second (higher is better)
 */
async function sample(c, n) {
  if (c.rate) return c.rate();
  if (c.timed) return (await c.timed(n)) / n;
  const t0 = now();
  const r = c.loop(n);
  if (r !== undefined && typeof r.then === 'function') await r;
  return Number(now() - t0) / n;
}

/**
 * Operations that fill one batch of `batchNs`, also warming the case up.
 * After a warm-up, n grows until a sample of n operations fills a third of a
 * batch, judged by the best of several samples: one preempted sample (or the
 * first, cold one) would otherwise stop the growth early and leave a case
 * with a handful of iterations per batch.
 */
async function calibrate(c, batchNs) {
  if (c.rate) {
    await c.rate(); // warm-up
    return 1;
  }
  let n = c.minIters ?? 1;
  await sample(c, n); // warm-up: the first run compiles and allocates
  for (;;) {
    let perOp = Infinity;
    for (let i = 0; i < CALIBRATION_SAMPLES; i++) perOp = Math.min(perOp, await sample(c, n));
    if (perOp * n >= batchNs / 3 || n >= 1e9) {
      const iters = Math.max(1, Math.round(batchNs / perOp));
      await sample(c, iters); // one full batch as warm-up
      return iters;
    }
    n *= 4;
  }
}

/**
 * Measures the cases of one group.
 * @param {object[]} cases  {id, label, unit, loop|timed|rate}
 * @param {{rounds:number, batches:number, batchMs:number, log?:(s:string)=>void}} opts
 * @returns {Map<string, {case, values:number[], median:number}>}
 */
async function measureGroup(cases, opts) {
  const batchNs = opts.batchMs * 1e6;
  const iters = new Map();
  for (const c of cases) iters.set(c.id, await calibrate(c, (c.batchMs ?? opts.batchMs) * 1e6 || batchNs));
  const values = new Map(cases.map((c) => [c.id, []]));
  for (let r = 0; r < opts.rounds; r++) {
    // Rotate the order each round and reverse it every other round, so no
    // case always runs first, last, or right after the same neighbour.
    let order = cases.slice(r % cases.length).concat(cases.slice(0, r % cases.length));
    if (r % 2) order = order.reverse();
    const best = new Map();
    for (let b = 0; b < opts.batches; b++) {
      for (const c of order) {
        const v = await sample(c, iters.get(c.id));
        const prev = best.get(c.id);
        const better = prev === undefined || (c.rate ? v > prev : v < prev);
        if (better) best.set(c.id, v);
      }
    }
    for (const c of cases) values.get(c.id).push(best.get(c.id));
    opts.log?.(`    round ${r + 1}/${opts.rounds}`);
  }
  const out = new Map();
  for (const c of cases) out.set(c.id, { case: c, values: values.get(c.id), median: median(values.get(c.id)) });
  return out;
}

/** Median over rounds of a/b, each round's pair measured side by side. */
function pairedRatio(a, b) {
  const n = Math.min(a.values.length, b.values.length);
  const ratios = [];
  for (let i = 0; i < n; i++) ratios.push(a.values[i] / b.values[i]);
  return { ratio: median(ratios), ratios };
}

module.exports = { median, measureGroup, pairedRatio };
