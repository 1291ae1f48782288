'use strict';
// The table (console and Markdown), bench/RESULTS.md and bench/ratios.svg.
const fs = require('node:fs');
const path = require('node:path');
const { pairedRatio } = require('./harness');

// Each comparison is a/b within one group (measured side by side). `max` or
// `min` makes it a target (of issue 5, and of issue 18 for the gauge at memory
// speed); the others are for scale and diagnosis.
const COMPARISONS = [
  { group: 'calls', a: 'postTry', b: 'noop2', label: 'post + tryWait ÷ 2 no-op N-API calls', max: 1.8 },
  { group: 'calls', a: 'value', b: 'noop1', label: 'value ÷ 1 no-op N-API call', max: 2.2 },
  { group: 'calls', a: 'gaugeRA', b: 'noop2', label: 'Gauge release + acquire ÷ 2 no-op N-API calls', max: 0.25 },
  { group: 'calls', a: 'gaugeV4', b: 'noop1', label: 'Gauge.value, 4 shares ÷ 1 no-op N-API call', max: 1 },
  { group: 'calls', a: 'gaugeV16', b: 'bindSum16', label: 'Gauge.value, 16 shares ÷ the native sum (binding alone)', max: 1 },
  { group: 'calls', a: 'gaugeV16', b: 'value', label: 'Gauge.value, 16 shares ÷ value', max: 3 },
  { group: 'ping', a: 'waitPing', b: 'cPing', label: 'wait() ping-pong ÷ C ping-pong', max: 2 },
  { group: 'ping', a: 'waitPingPinned', b: 'cPingPinned', label: 'wait() ping-pong ÷ C ping-pong, both pinned to CPU 0', max: 2 },
  { group: 'http', a: 'httpBusy', b: 'httpPlain', label: 'req/s with busyMiddleware ÷ without', min: 0.98, cost: true },
  { group: 'request', a: 'python', b: 'oursGauge', label: 'Python per request ÷ ours (Gauge, 4 shares)', min: 8 },
  { group: 'request', a: 'redis', b: 'oursGauge', label: 'Redis per request ÷ ours (Gauge)', min: 100 },
  { group: 'request', a: 'fileLock', b: 'oursGauge', label: 'file lock per request ÷ ours (Gauge)', min: 1000 },
  // For scale and diagnosis.
  { group: 'calls', a: 'rawPostTry', b: 'noop2', label: 'minimal N-API post + tryWait ÷ 2 no-ops' },
  { group: 'calls', a: 'rawValue', b: 'noop1', label: 'minimal N-API getvalue ÷ 1 no-op' },
  { group: 'calls', a: 'bindPostTry', b: 'noop2', label: 'our binding post() + tryWait() ÷ 2 no-ops' },
  { group: 'calls', a: 'rawPostTryShared', b: 'rawPostTry', label: 'minimal N-API post + tryWait: call site that has seen 8 handles ÷ one handle' },
  { group: 'calls', a: 'postTryShared', b: 'postTry', label: 'sem.post() + sem.tryWait(): after 8 semaphores ÷ one' },
  { group: 'calls', a: 'bindValue', b: 'noop1', label: 'our binding value() ÷ 1 no-op' },
  { group: 'calls', a: 'postTry', b: 'bindPostTry', label: 'post + tryWait ÷ our binding alone (TS layer)' },
  { group: 'calls', a: 'value', b: 'bindValue', label: 'value ÷ our binding alone (TS layer)' },
  { group: 'calls', a: 'postTry', b: 'cPostTry', label: 'post + tryWait ÷ the same in C' },
  { group: 'calls', a: 'value', b: 'cValue', label: 'value ÷ sem_getvalue in C' },
  { group: 'calls', a: 'gaugeV1', b: 'value', label: 'Gauge.value, 1 share ÷ value' },
  { group: 'calls', a: 'gaugeRA', b: 'postTry', label: 'Gauge release + acquire ÷ post + tryWait' },
  { group: 'calls', a: 'bindSum16', b: 'bindSum1', label: 'our binding sum(): 16 shares ÷ 1 share' },
  { group: 'calls', a: 'protoPostTry', b: 'noop2', label: 'prototype (Atomics) post + tryWait ÷ 2 no-ops' },
  { group: 'calls', a: 'protoGaugeV16', b: 'gaugeV16', label: 'Gauge value, 16 shares: Atomics.load on each word (the prototype) ÷ plain loads (ours)' },
  { group: 'calls', a: 'protoPostTry', b: 'postTry', label: 'post + tryWait: Atomics in JavaScript (the prototype) ÷ ours (native)' },
  { group: 'calls', a: 'gaugeV4', b: 'value', label: 'Gauge.value, 4 shares ÷ value' },
  { group: 'request', a: 'oursSem', b: 'oursGauge', label: 'ours (NamedSemaphore) ÷ ours (Gauge)' },
  { group: 'request', a: 'sab', b: 'oursGauge', label: 'SharedArrayBuffer + Atomics ÷ ours (Gauge)' },
  { group: 'request', a: 'python', b: 'oursSem', label: 'Python per request ÷ ours (NamedSemaphore)' },
  { group: 'request', a: 'python', b: 'bindGauge', label: 'Python per request ÷ ours through the binding alone (no TS layer)' },
  { group: 'request', a: 'bindGauge', b: 'noop3', label: 'ours through the binding alone ÷ 3 no-op N-API calls' },
  { group: 'request', a: 'python', b: 'oursGaugeMw', label: 'Python per request ÷ ours (Gauge, as busyMiddleware counts: releaseAndRead + acquire)' },
  { group: 'cluster', a: 'aggregator', b: 'clusterValue', label: 'prom-client aggregator read ÷ gauge.value' },
  { group: 'cluster', a: 'clusterRead', b: 'clusterValue', label: 'Gauge.read(name) ÷ gauge.value' },
  { group: 'ping', a: 'waitSyncPing', b: 'cPing', label: 'waitSync() ping-pong ÷ C ping-pong' },
  { group: 'ping', a: 'waitThreadPing', b: 'waitPing', label: 'wait() ping-pong with waiter threads ÷ the default' },
  { group: 'ping', a: 'socketPing', b: 'waitPing', label: "Node's Unix-socket ping-pong ÷ wait() ping-pong" },
  { group: 'ping', a: 'socketPingPinned', b: 'waitPingPinned', label: "Node's Unix-socket ping-pong ÷ wait() ping-pong, both pinned" },
  { group: 'http', a: 'httpPlainAgain', b: 'httpPlain', label: 'req/s plain ÷ plain: the A/A control, two identical cases' },
  { group: 'httpCpu', a: 'httpBusyCpu', b: 'httpPlainCpu', label: 'server CPU per request, busyMiddleware ÷ plain' },
  { group: 'httpMicro', a: 'mwBusy', b: 'mwBase', label: 'in-process request objects, busyMiddleware ÷ none' },
  { group: 'hammer', a: 'hammer1', b: 'cHammer', label: 'throughput, 1 process ÷ C' },
  { group: 'hammer', a: 'hammer2', b: 'hammer1', label: 'throughput, 2 processes ÷ 1' },
  { group: 'hammer', a: 'hammer4', b: 'hammer1', label: 'throughput, 4 processes ÷ 1' },
];

// RSS growth (MB) over 1,000,000 operations that counts as flat.
const FLAT_MB = 5;

function sig(x, digits = 3) {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 10 ** digits) return Math.round(x).toLocaleString('en-US');
  return Number(x.toPrecision(digits)).toString();
}

function fmtUnitValue(v, unit) {
  if (!Number.isFinite(v)) return '–';
  if (unit === 'ns') return v >= 1e6 ? `${sig(v / 1e6)} ms` : v >= 1e4 ? `${sig(v / 1e3)} µs` : `${sig(v)} ns`;
  return `${sig(v)} ${unit}`;
}

function fmtRatio(r) {
  if (!Number.isFinite(r)) return '–';
  return r >= 100 ? `${Math.round(r).toLocaleString('en-US')}×` : `${sig(r)}×`;
}

/** Every comparison whose cases were measured, with its ratio and verdict. */
function comparisons(results) {
  const byGroup = new Map(results.groups.map((g) => [g.id, g]));
  const out = [];
  for (const c of COMPARISONS) {
    const g = byGroup.get(c.group);
    const a = g?.cases.get(c.a);
    const b = g?.cases.get(c.b);
    const isTarget = c.max !== undefined || c.min !== undefined;
    if (!a || !b) {
      if (isTarget) out.push({ ...c, ratio: NaN, met: null, missing: true });
      continue;
    }
    const { ratio, ratios } = pairedRatio(a, b);
    let met = null;
    if (c.max !== undefined) met = ratio <= c.max;
    if (c.min !== undefined) met = ratio >= c.min;
    out.push({ ...c, ratio, ratios, met, aLabel: a.case.label, bLabel: b.case.label });
  }
  return out;
}

function targetText(c) {
  if (c.cost) return `cost ≤ ${sig((1 - c.min) * 100)} %`;
  if (c.max !== undefined) return `≤ ${fmtRatio(c.max)}`;
  if (c.min !== undefined) return `≥ ${fmtRatio(c.min)}`;
  return '';
}

function ratioText(c) {
  if (c.missing) return 'not measured';
  if (c.cost) return `${fmtRatio(c.ratio)} (cost ${sig((1 - c.ratio) * 100, 2)} %)`;
  return fmtRatio(c.ratio);
}

function verdict(c) {
  if (c.missing) return 'not measured';
  if (c.met === null) return '';
  if (c.met) return 'met';
  if (c.cost) return `MISSED: costs ${sig((1 - c.ratio) * 100, 2)} %, allowed ${sig((1 - c.min) * 100)} %`;
  if (c.max !== undefined) return `MISSED by ${sig((c.ratio / c.max - 1) * 100, 2)} %`;
  return `MISSED: ${sig(c.min / c.ratio, 2)}× short`;
}

/**
 * For each missed target, what this run's own figures say about why: a
 * floor measured beside it, or the part that costs. Nothing here is typed in.
 */
function whyMissed(results, comps) {
  const byGroup = new Map(results.groups.map((g) => [g.id, g]));
  const med = (group, id) => byGroup.get(group)?.cases.get(id)?.median;
  const ratio = (group, a, b) => {
    const x = byGroup.get(group)?.cases.get(a);
    const y = byGroup.get(group)?.cases.get(b);
    return x && y ? pairedRatio(x, y).ratio : NaN;
  };
  const ns = (group, id) => fmtUnitValue(med(group, id), 'ns');
  const missed = (a) => comps.some((c) => c.a === a && c.met === false);
  const out = [];
  if (missed('postTry')) {
    const floor = (med('calls', 'noop2') + med('calls', 'cPostTry')) / med('calls', 'noop2');
    out.push(
      `- **post + tryWait**: two no-op calls plus C's sem_post + sem_trywait alone come to ${fmtRatio(floor)} the no-op pair. ` +
        `A minimal binding with the semaphore bound as each function's data measures ${fmtRatio(ratio('calls', 'rawPostTry', 'noop2'))}, ` +
        `but ${fmtRatio(ratio('calls', 'rawPostTryShared', 'noop2'))} once its call site has seen 8 semaphores. Ours, one set of functions ` +
        `that take the id through the call slots, measures ${fmtRatio(ratio('calls', 'bindPostTry', 'noop2'))} for the binding alone; ` +
        `the TypeScript layer (closed check, errors) adds ${fmtRatio(ratio('calls', 'postTry', 'bindPostTry'))}, and sem.post() + sem.tryWait() ` +
        `cost ${fmtRatio(ratio('calls', 'postTryShared', 'postTry'))} as much after 8 semaphores were used through the same code as with one.`,
    );
  }
  if (missed('gaugeRA') || missed('gaugeV4') || missed('gaugeV16')) {
    out.push(
      `- **The gauge's hot paths** make no native call: release + acquire are a load, a compare and a store each ` +
        `(${ns('calls', 'gaugeRA')}; two no-op N-API calls ${ns('calls', 'noop2')}), and value sums one word per share, ` +
        `each share a page of its own: ${ns('calls', 'gaugeV1')} with 1 share, ${ns('calls', 'gaugeV4')} with 4, ${ns('calls', 'gaugeV16')} with 16, ` +
        `where the native sum through the binding alone takes ${ns('calls', 'bindSum16')} and a value word read ${ns('calls', 'value')}.`,
    );
  }
  if (missed('waitPing') || missed('waitPingPinned')) {
    out.push(
      `- **wait() ping-pong**: ${ns('ping', 'waitPing')} a round trip, of which C's ping-pong is ${ns('ping', 'cPing')} and waitSync(), ` +
        `which blocks its thread as C does, ${ns('ping', 'waitSyncPing')}; with waiter threads, whose wake-up crosses two threads ` +
        `where C's crosses one, wait() measures ${ns('ping', 'waitThreadPing')}. With both sides on one CPU, C's ping-pong takes ` +
        `${ns('ping', 'cPingPinned')} and wait() ${ns('ping', 'waitPingPinned')}: the rest is the event loop's own turn on each side, ` +
        `which any async wake-up pays; Node's own 1-byte Unix-socket ping-pong measures ${ns('ping', 'socketPing')}, ` +
        `and ${ns('ping', 'socketPingPinned')} with both sides on CPU 0.`,
    );
  }
  if (missed('httpBusy')) {
    const own = med('httpMicro', 'mwBusy') - med('httpMicro', 'mwBase');
    const perRequest = 1e9 / med('http', 'httpPlain');
    const cases = byGroup.get('http').cases;
    const plain = cases.get('httpPlain').values;
    const swing = (Math.max(...plain) - Math.min(...plain)) / med('http', 'httpPlain');
    let control = '';
    if (cases.has('httpPlainAgain')) {
      const aa = pairedRatio(cases.get('httpPlainAgain'), cases.get('httpPlain'));
      const busy = pairedRatio(cases.get('httpBusy'), cases.get('httpPlain')).ratio;
      const rounds = aa.ratios.filter(Number.isFinite);
      if (rounds.length > 0) {
        const [low, high] = [Math.min(...rounds), Math.max(...rounds)];
        const where = busy < low ? 'below that range' : busy > high ? 'above that range' : 'within it';
        control =
          ` The A/A control, the plain server measured as two cases, came out ${fmtRatio(aa.ratio)}, its rounds ranging ` +
          `${fmtRatio(low)}–${fmtRatio(high)}; busyMiddleware's ${fmtRatio(busy)} lies ${where}` +
          (where === 'within it' ? ', so this run cannot tell its cost from noise.' : '.');
      }
    }
    out.push(
      `- **busyMiddleware**: its own work measures ${fmtUnitValue(own, 'ns')} a request in-process, ` +
        `${sig((own / perRequest) * 100, 2)} % of the ${fmtUnitValue(perRequest, 'ns')} a request takes at ${sig(med('http', 'httpPlain'))} req/s; ` +
        `meanwhile the plain server's req/s alone ranged over ${sig(swing * 100, 2)} % of its median from round to round.${control}`,
    );
  }
  if (missed('python')) {
    out.push(
      `- **Python per request**: Python's pattern is three C calls on one semaphore (${ns('request', 'python')}). ` +
        `Ours with a Gauge of 4 shares makes no native call: ${ns('request', 'oursGauge')} ` +
        `(release + acquire alone ${ns('calls', 'gaugeRA')}, value with 4 shares ${ns('calls', 'gaugeV4')}); ` +
        `the same three steps as native calls through the binding alone take ${ns('request', 'bindGauge')}, and three no-op N-API calls ${ns('request', 'noop3')}.`,
    );
  }
  return out;
}

function memoryVerdicts(results) {
  if (!results.memory) return [];
  return results.memory.map((p) => {
    const perMillion = (p.rssGrowth * 1e6) / p.n;
    return { ...p, perMillion, met: perMillion <= FLAT_MB };
  });
}

// ---- plain text (console) --------------------------------------------------

function pad(s, n) {
  s = String(s);
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}
function padL(s, n) {
  s = String(s);
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function textTable(rows, align) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((cell, i) => (align[i] === 'r' ? padL(cell, widths[i]) : pad(cell, widths[i]))).join('  ').trimEnd()).join('\n');
}

function spread(values, unit) {
  const v = values.filter(Number.isFinite);
  if (v.length === 0) return '';
  return `${fmtUnitValue(Math.min(...v), unit)} – ${fmtUnitValue(Math.max(...v), unit)}`;
}

function measurementRows(results) {
  const rows = [];
  for (const g of results.groups) {
    rows.push({ group: g.title });
    for (const m of g.cases.values()) {
      rows.push({ label: m.case.label, median: fmtUnitValue(m.median, m.case.unit), spread: spread(m.values, m.case.unit), unit: m.case.unit });
    }
  }
  return rows;
}

function text(results, comps) {
  const lines = [];
  const m = results.machine;
  lines.push('');
  lines.push(`named-semaphore benchmarks${results.quick ? ' (--quick: rough figures)' : ''}`);
  lines.push(`${m.cpu}, ${m.cores} cores; Node ${m.node}; glibc ${m.glibc}; ${results.config.rounds} rounds`);
  lines.push('');
  const rows = [['', 'median', 'min–max over rounds']];
  for (const r of measurementRows(results)) {
    if (r.group) rows.push([`${r.group}`, '', '']);
    else rows.push([`  ${r.label}`, r.median, r.spread]);
  }
  lines.push(textTable(rows, ['l', 'r', 'r']));
  lines.push('');
  const crow = [['ratio (median of per-round ratios)', 'ratio', 'target', 'result']];
  for (const c of comps) crow.push([c.label, ratioText(c), targetText(c), verdict(c)]);
  lines.push(textTable(crow, ['l', 'r', 'l', 'l']));
  if (results.lost.length) {
    lines.push('');
    const lrow = [['lost updates (2 peers at once)', 'final', 'expected', 'lost']];
    for (const l of results.lost) lrow.push([l.what, l.final, l.expected, l.expected - l.final]);
    lines.push(textTable(lrow, ['l', 'r', 'r', 'r']));
  }
  const mem = memoryVerdicts(results);
  if (mem.length) {
    lines.push('');
    const mrow = [['memory (RSS after gc)', 'growth', 'last half', 'time', `flat (≤ ${FLAT_MB} MB per million)`]];
    for (const p of mem) {
      mrow.push([`${p.n.toLocaleString('en-US')} ${p.label}`, `${sig(p.rssGrowth, 2)} MB`, `${sig(p.rssGrowthSecondHalf, 2)} MB`, `${sig(p.ms / 1000, 2)} s`, p.met ? 'met' : 'MISSED']);
    }
    lines.push(textTable(mrow, ['l', 'r', 'r', 'r', 'l']));
  }
  for (const row of idleRows(results)) lines.push(row);
  for (const n of results.notes) lines.push(`note: ${n}`);
  for (const e of results.errors) lines.push(`FAILED: ${e.section}: ${e.message.split('\n')[0]}`);
  lines.push('');
  return lines.join('\n');
}

// Idle waits: 1000 pending wait() calls on 1000 semaphores, nothing posted.
const IDLE_MAX_SHARE = 0.02;
function idleRows(results) {
  if (!results.idle?.length) return [];
  const rows = [''];
  for (const r of results.idle) {
    const met = r.cpuShare <= IDLE_MAX_SHARE ? 'met' : 'MISSED';
    rows.push(`idle: ${r.count} waits on ${r.count} semaphores, ${r.mechanism}: ${sig(r.cpuShare * 100, 2)} % of a CPU (target ≤ ${IDLE_MAX_SHARE * 100} %: ${met}), ${r.extraThreads} threads`);
  }
  return rows;
}

// ---- Markdown --------------------------------------------------------------

function mdEscape(s) {
  return String(s).replace(/\|/g, '\\|');
}

function markdown(results, comps, svgName) {
  const m = results.machine;
  const L = [];
  L.push('# Benchmark results');
  L.push('');
  L.push(
    results.quick
      ? '_A `--quick` smoke run: few, short rounds. The figures are rough; only a full run judges the targets._'
      : '_Generated by `npm run bench` (bench/run.js); do not edit by hand._',
  );
  L.push('');
  L.push('| machine | |');
  L.push('|---|---|');
  L.push(`| CPU | ${mdEscape(m.cpu)} |`);
  L.push(`| cores | ${m.cores} |`);
  L.push(`| Node.js | ${m.node} |`);
  L.push(`| glibc | ${m.glibc} |`);
  L.push(`| kernel | ${mdEscape(m.kernel)} |`);
  L.push(`| Python | ${mdEscape(m.python)} |`);
  L.push(`| Redis | ${mdEscape(results.redis ?? 'not available')} |`);
  L.push(`| run | ${(results.finished ?? new Date().toISOString()).slice(0, 16).replace('T', ' ')} UTC, ${Math.round(results.seconds)} s in all |`);
  L.push('');
  L.push(`Reproduce: \`npm run bench\` (the full run, about ${Math.max(1, Math.round(results.seconds / 60))} min; needs \`npm run build\` first, and installs`);
  L.push("Debian's `redis-server` with apt-get when it is missing); `node bench/run.js --quick` is the smoke run for CI.");
  L.push('');
  L.push(
    `How: every group's cases run in the same ${results.config.rounds} rounds, interleaved batch by batch, in an order that rotates ` +
      'and reverses from round to round. A round keeps each case\'s best batch (a preempted batch is dropped); the tables show ' +
      'the median over rounds, and each ratio is the median of the per-round ratios of two cases measured side by side. ' +
      'The machine is shared and noisy: compare ratios, not absolute figures, across runs.',
  );
  L.push('');
  L.push('## Targets (issue 5)');
  L.push('');
  L.push('| comparison | ratio | target | result |');
  L.push('|---|---:|---|---|');
  for (const c of comps.filter((c) => c.max !== undefined || c.min !== undefined)) {
    L.push(`| ${mdEscape(c.label)} | ${ratioText(c)} | ${targetText(c)} | ${c.met ? '**met**' : `**${verdict(c)}**`} |`);
  }
  for (const r of results.idle ?? []) {
    L.push(`| idle CPU, ${r.count} waits on ${r.count} semaphores, ${r.mechanism} (${r.extraThreads} threads) | ${sig(r.cpuShare * 100, 2)} % of a CPU | ≤ ${IDLE_MAX_SHARE * 100} % | ${r.cpuShare <= IDLE_MAX_SHARE ? '**met**' : '**MISSED**'} |`);
  }
  for (const p of memoryVerdicts(results)) {
    L.push(
      `| RSS growth, ${p.n.toLocaleString('en-US')} ${p.label} | ${sig(p.rssGrowth, 2)} MB (last half ${sig(p.rssGrowthSecondHalf, 2)} MB) | flat: ≤ ${FLAT_MB} MB per million | ${p.met ? '**met**' : '**MISSED**'} |`,
    );
  }
  L.push('');
  const why = whyMissed(results, comps);
  if (why.length > 0) {
    L.push('Why the missed targets are missed, from this run\'s own figures:');
    L.push('');
    for (const line of why) L.push(line);
    L.push('');
  }
  L.push(`![ratios](${svgName})`);
  L.push('');
  L.push('## Measurements');
  L.push('');
  L.push('| case | median | min–max over rounds |');
  L.push('|---|---:|---:|');
  for (const r of measurementRows(results)) {
    if (r.group) L.push(`| **${mdEscape(r.group)}** | | |`);
    else L.push(`| ${mdEscape(r.label)} | ${r.median} | ${r.spread} |`);
  }
  L.push('');
  L.push('## Ratios for scale and diagnosis');
  L.push('');
  L.push('| comparison | ratio |');
  L.push('|---|---:|');
  for (const c of comps.filter((c) => c.max === undefined && c.min === undefined)) L.push(`| ${mdEscape(c.label)} | ${ratioText(c)} |`);
  L.push('');
  if (results.lost.length) {
    L.push('## Lost updates');
    L.push('');
    L.push('Two peers at once, each doing n × (+1, +1, −1) on one shared count; it must end at 2n.');
    L.push('');
    L.push('| count | final | expected | lost | time |');
    L.push('|---|---:|---:|---:|---:|');
    for (const l of results.lost) {
      L.push(`| ${mdEscape(l.what)} | ${l.final} | ${l.expected} | ${l.expected - l.final === 0 ? '0' : `**${l.expected - l.final}**`} | ${sig(l.ms / 1000, 2)} s |`);
    }
    L.push('');
  }
  const mem = memoryVerdicts(results);
  if (mem.length) {
    L.push('## Memory');
    L.push('');
    L.push(
      'In a child process run with `--expose-gc`: RSS with the heap collected (and N-API finalizers run) after a warm-up of 5 %, ' +
        'then after each tenth of the run. wait() calls: most find the value pre-posted and resolve at once; every ' +
        `${results.config.memory.blockingEvery}th really blocks (the value is 0) and is woken by a post made after the call.`,
    );
    L.push('');
    L.push('| run | RSS growth | growth over the last half | RSS at each tenth (MB) | time |');
    L.push('|---|---:|---:|---|---:|');
    for (const p of mem) {
      const extra = p.extra ? ` (${p.extra.toLocaleString('en-US')} of them blocking)` : '';
      L.push(
        `| ${p.n.toLocaleString('en-US')} ${p.label}${extra} | ${sig(p.rssGrowth, 2)} MB | ${sig(p.rssGrowthSecondHalf, 2)} MB | ${p.rss.map((x) => Math.round(x)).join(', ')} | ${sig(p.ms / 1000, 2)} s |`,
      );
    }
    if (results.openCloseC) {
      const p = mem.find((x) => x.label.startsWith('open'));
      if (p) L.push(`\nOne open/close cycle took ${sig((p.ms * 1e3) / p.n)} µs; sem_open + sem_close in C take ${sig(results.openCloseC / 1000)} µs.`);
    }
    L.push('');
  }
  if (results.notes.length || results.errors.length) {
    L.push('## Notes');
    L.push('');
    for (const n of results.notes) L.push(`- ${n}`);
    for (const e of results.errors) L.push(`- FAILED: ${mdEscape(e.section)}: ${mdEscape(e.message.split('\n')[0])}`);
    L.push('');
  }
  L.push('## What is measured');
  L.push('');
  L.push(
    [
      '- **No-op N-API call**: a function of the bench-only addon `bench/noop` (plain N-API, built with node-gyp) that does nothing: the floor of any call from JavaScript into native code. The *minimal* post/tryWait/getvalue functions of the same addon do only the system call on a semaphore bound as the function\'s data, and return undefined (post, tryWait) or an int32 (getvalue). Bound functions are the leanest call while one call site sees one handle; *from a call site that has seen 8 handles* is the same call made through a wrapper class used with 8 such handles, as a library would make it: V8 can then no longer call the native function directly. That is why our binding takes the handle\'s id as an argument to one set of functions instead.',
      '- **C**: `bench/c/semloop.c`, built with `cc -O2`: the same operations in a loop, the same ping-pong between two processes, the same hammering.',
      '- **Ours**: the public API from `dist/` (`NamedSemaphore`, `Gauge`); "our binding" calls the binding\'s functions directly (the id written into the call slots, then `binding.post()`), without the TypeScript layer, to show where the time goes. Gauge shares other than the reader\'s own live in another process.',
      '- **Per request** (the access-log pattern: one count raised at the start, read, lowered at the end): ours with a Gauge of 4 live shares; Python\'s `multiprocessing.Semaphore` in a python3 loop (methods bound to locals, which only helps Python); SharedArrayBuffer + Atomics (one process only, for scale); a counter file under proper-lockfile (`lockSync`, the fastest way it offers: no retries, no timers); Redis `INCR`, `GET`, `DECR` through ioredis, each awaited, against a redis-server of the bench\'s own on loopback (`--save \'\'`, no persistence).',
      '- **Cluster read**: a 2-worker `node:cluster`; the primary reads the workers\' count through prom-client\'s `AggregatorRegistry.clusterMetrics()` (IPC to each worker), or through a Gauge (its shares in /dev/shm).',
      '- **Ping-pong**: two processes, two semaphores; a round trip is two cross-process wake-ups. Ours uses `await wait()` on both sides, through io_uring where the machine allows it and, in a second pair, through waiter threads (`NAMED_SEMAPHORE_WAITER=thread`); or `waitSync()` on both, for diagnosis. The C pair and one wait() pair run again with both sides pinned to CPU 0 (`taskset -c 0`), since a wake-up across CPUs costs more on a VM.',
      '- **HTTP**: one 1-process node:http server answering `ok`, which calls `busyMiddleware(name)(req, res)` first or not, switched between runs (two server processes with the same handler differed by several percent); autocannon (programmatic, 10 connections) alternates between the two modes.',
    ].join('\n'),
  );
  L.push('');
  return L.join('\n');
}

// ---- SVG ---------------------------------------------------------------------

function xmlEscape(s) {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A horizontal bar chart of the ratios on a log scale, targets marked. */
function svg(results, comps) {
  comps = [...comps.filter((c) => c.met !== null), ...comps.filter((c) => c.met === null)];
  const items = comps.filter((c) => Number.isFinite(c.ratio) && c.ratio > 0);
  const targets = items.filter((c) => c.met !== null).length;
  const rowH = 22;
  const left = 380;
  const width = 960;
  const plotW = width - left - 90;
  const top = 76;
  const height = top + items.length * rowH + 50;
  const vals = items.flatMap((c) => [c.ratio, c.max ?? c.ratio, c.min ?? c.ratio]);
  const lo = Math.floor(Math.log10(Math.min(0.5, ...vals)));
  const hi = Math.ceil(Math.log10(Math.max(10, ...vals) * 1.5));
  const x = (v) => left + ((Math.log10(v) - lo) / (hi - lo)) * plotW;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`);
  o.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  const m = results.machine;
  o.push(`<text x="12" y="22" font-size="15" font-weight="bold">named-semaphore: ratios measured side by side${results.quick ? ' (--quick)' : ''}</text>`);
  o.push(`<text x="12" y="40" fill="#555">${xmlEscape(`${m.cpu}, ${m.cores} cores, Node ${m.node}, glibc ${m.glibc}; npm run bench`)}</text>`);
  o.push(`<text x="12" y="56" fill="#555">Log scale. Above the dashed line the targets of issue 5 (| marks the target; green met, red missed); below, for scale (grey).</text>`);
  // Grid: powers of ten.
  for (let p = lo; p <= hi; p++) {
    const gx = x(10 ** p);
    o.push(`<line x1="${gx.toFixed(1)}" y1="${top - 6}" x2="${gx.toFixed(1)}" y2="${top + items.length * rowH}" stroke="${p === 0 ? '#888' : '#ddd'}"/>`);
    o.push(`<text x="${gx.toFixed(1)}" y="${top + items.length * rowH + 16}" text-anchor="middle" fill="#555">${10 ** p >= 1 ? (10 ** p).toLocaleString('en-US') : 10 ** p}×</text>`);
  }
  items.forEach((c, i) => {
    const y = top + i * rowH;
    const color = c.met === true ? '#2e9d4f' : c.met === false ? '#d0392f' : '#9aa3ad';
    const x0 = x(1);
    const x1 = x(c.ratio);
    o.push(`<text x="${left - 8}" y="${y + 15}" text-anchor="end">${xmlEscape(c.label)}</text>`);
    o.push(`<rect x="${Math.min(x0, x1).toFixed(1)}" y="${y + 4}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${rowH - 8}" fill="${color}"/>`);
    const target = c.max ?? c.min;
    if (target !== undefined) {
      const tx = x(target);
      o.push(`<line x1="${tx.toFixed(1)}" y1="${y + 1}" x2="${tx.toFixed(1)}" y2="${y + rowH - 1}" stroke="#111" stroke-width="2"/>`);
    }
    o.push(`<text x="${(Math.max(x0, x1) + 6).toFixed(1)}" y="${y + 15}" fill="#333">${xmlEscape(fmtRatio(c.ratio))}</text>`);
  });
  if (targets > 0 && targets < items.length) {
    const sy = top + targets * rowH;
    o.push(`<line x1="12" y1="${sy}" x2="${width - 12}" y2="${sy}" stroke="#bbb" stroke-dasharray="4 3"/>`);
  }
  o.push(`<text x="${left}" y="${height - 12}" fill="#555">ratio (median of per-round ratios); bars start at 1×</text>`);
  o.push('</svg>');
  return o.join('\n') + '\n';
}

/** Writes RESULTS.md and ratios.svg into `dir`; returns the console text. */
function write(results, { dir, suffix = '' }) {
  const comps = comparisons(results);
  const svgName = `ratios${suffix}.svg`;
  const mdName = `RESULTS${suffix}.md`;
  fs.mkdirSync(dir, { recursive: true });
  const files = [path.join(dir, mdName), path.join(dir, svgName)];
  fs.writeFileSync(files[0], markdown(results, comps, svgName));
  fs.writeFileSync(files[1], svg(results, comps));
  return { text: text(results, comps), files };
}

module.exports = { write, fmtUnitValue, COMPARISONS };
