#!/usr/bin/env node
'use strict';
// npm run bench: every benchmark of named-semaphore in one go.
//
//   node bench/run.js           the full run (about 3 minutes): prints the
//                               table, writes bench/RESULTS.md and bench/ratios.svg
//   node bench/run.js --quick   a smoke run (well under a minute) that checks every
//                               part works; writes bench/.work/RESULTS-quick.md
//
// Every comparison is a ratio against a baseline measured in the same run,
// side by side, in alternating rounds (see lib/harness.js). Sections that
// cannot run here (no redis-server, no dist/http.js yet) are skipped with a
// note, never faked.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Worker } = require('node:worker_threads');

const setup = require('./lib/setup');
const rpc = require('./lib/rpc');
const { measureGroup, median } = require('./lib/harness');
const report = require('./lib/report');

const quick = process.argv.includes('--quick');
// --report-only: write the report again from the last run's saved results
// (bench/.work/results*.json), without measuring.
const reportOnly = process.argv.includes('--report-only');
// --only=calls,ping,...: run only these sections (for working on one; the
// report then says so). Sections: calls request cluster ping hammer http lost memory idle.
const only = (process.argv.find((a) => a.startsWith('--only=')) ?? '').slice(7).split(',').filter(Boolean);
const CFG = quick
  ? {
      rounds: 3,
      batches: 2,
      callsMs: 3,
      requestMs: 5,
      pingMs: 8,
      hammerMs: 40,
      httpSeconds: 0.5,
      httpRounds: 3,
      httpBatches: 1,
      lost: { sem: 20000, gauge: 20000, fileNoLock: 300, fileLock: 40, redis: 500, python: 5000, sab: 100000 },
      memory: { cycles: 20000, waits: 50000, blockingEvery: 50 },
    }
  : {
      rounds: 7,
      batches: 5,
      callsMs: 10,
      requestMs: 20,
      pingMs: 30,
      hammerMs: 250,
      httpSeconds: 1,
      httpRounds: 7,
      httpBatches: 2,
      lost: { sem: 200000, gauge: 200000, fileNoLock: 3000, fileLock: 300, redis: 5000, python: 100000, sab: 1000000 },
      memory: { cycles: 1000000, waits: 1000000, blockingEvery: 50 },
    };

const log = (s) => process.stderr.write(`${s}\n`);
const started = Date.now();

// What the report is made of.
const results = {
  quick,
  machine: null,
  groups: [], // {id, title, note, cases: Map}
  notes: [], // strings
  errors: [], // {section, message}
  lost: [], // {what, final, expected, ms, note}
  memory: null,
  redis: null,
  seconds: 0,
  config: CFG,
};

let sink = 0; // results of reads, so that no loop is optimized away
let redisServer = null; // stopped at the end, whatever happens

// ---- helpers -------------------------------------------------------------

function runJson(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? `exit ${r.status}`} ${r.stderr ?? ''}`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function section(id, name, fn) {
  if (only.length > 0 && id !== 'setup' && !only.includes(id)) return;
  const t0 = Date.now();
  log(`\n== ${name}`);
  try {
    await fn();
  } catch (e) {
    results.errors.push({ section: name, message: String(e?.stack ?? e) });
    log(`  FAILED: ${e?.stack ?? e}`);
  }
  log(`  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

function addGroup(id, title, cases, measured, note) {
  results.groups.push({ id, title, note, cases: measured });
  for (const c of cases) {
    const m = measured.get(c.id);
    log(`  ${c.label.padEnd(62)} ${report.fmtUnitValue(m.median, c.unit)}`);
  }
}

// A python3 child that runs the Python pattern on request (see py/alt.py).
// A minimal handle (functions bound to its semaphore, as bench/noop makes
// them) behind a class, as a library would wrap it: every instance shares the
// class's call sites.
class RawWrapper {
  #h;
  constructor(h) {
    this.#h = h;
  }
  post() {
    if (this.#h.post() !== undefined) throw new Error('post failed');
  }
  tryWait() {
    if (this.#h.tryWait() !== undefined) throw new Error('tryWait failed');
  }
  warm() {
    for (let i = 0; i < 1000; i++) {
      this.post();
      this.tryWait();
    }
  }
}

function startPython() {
  const child = spawn('python3', [path.join(__dirname, 'py', 'alt.py'), 'bench'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let buf = '';
  const waiting = [];
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      waiting.shift()?.resolve(Number(line));
    }
  });
  child.once('exit', (code) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`python3 exited (${code})`));
  });
  return {
    timed: (n) =>
      new Promise((resolve, reject) => {
        waiting.push({ resolve, reject });
        child.stdin.write(`${n}\n`);
      }),
    stop: () => {
      child.stdin.end();
      child.kill();
    },
  };
}

// ---- the sections ----------------------------------------------------------

async function main() {
  process.on('SIGINT', () => {
    rpc.killAll();
    redisServer?.stop();
    setup.cleanup();
    process.exit(130);
  });
  results.machine = setup.machine();
  const m = results.machine;
  log(`named-semaphore bench${quick ? ' (--quick)' : ''}: ${m.cpu}, ${m.cores} cores, Node ${m.node}, glibc ${m.glibc}`);

  for (const f of ['dist/index.js', 'build/Release/named_semaphore.node']) {
    if (!fs.existsSync(path.join(setup.ROOT, f))) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  const { NamedSemaphore, Gauge } = require('..');
  const { binding } = require('../dist/native');

  let semloop, noop, redis;
  await section('setup', 'setup: C program, no-op addon, redis-server', async () => {
    semloop = setup.buildC();
    log('  built bench/.work/semloop (cc -O2)');
    noop = setup.buildNoop();
    log('  built bench/.work/noop (node-gyp, plain N-API)');
    redis = await setup.startRedis({ install: !quick, log });
    if (!redis.error) redisServer = redis;
    if (redis.error) {
      results.notes.push(`Redis: not measured: ${redis.error}.`);
      log(`  Redis skipped: ${redis.error}`);
      redis = null;
    } else {
      results.redis = redis.version;
      log(`  ${redis.version.split(' ').slice(0, 3).join(' ')} on 127.0.0.1:${redis.port}`);
    }
  });
  if (!semloop || !noop) throw new Error('setup failed');

  // Semaphores and gauges shared by several sections.
  const sem = new NamedSemaphore(setup.semName('s'));
  const handle = binding.open(setup.semName('b'), true, false, 0o600, 0);
  if (typeof handle === 'number') throw new Error(`binding.open failed: errno ${handle}`);
  const hid = handle.id;
  const slots = new Float64Array(binding.callSlots); // the hot paths take their id here (see lib/native.ts)
  const raw = noop.open(setup.semName('r'));
  // Diagnosis: what binding each handle's own functions would cost in real
  // use, where one call site sees several handles (V8 then cannot call the
  // native function directly). Eight minimal handles behind one wrapper class:
  const rawMany = Array.from({ length: 8 }, (_, i) => new RawWrapper(noop.open(setup.semName(`r${i}`))));
  for (const w of rawMany) w.warm();
  const rawShared = rawMany[0];
  // ...and ours the same way: 8 semaphores used through the same code first.
  const semMany = Array.from({ length: 8 }, (_, i) => new NamedSemaphore(setup.semName(`s${i}`)));
  for (const s of semMany) for (let i = 0; i < 1000; i++) { s.post(); s.tryWait(); }
  const semShared = semMany[0];
  new NamedSemaphore(setup.semName('m')).close(); // for the prototype to map
  const names = { g1: setup.semName('g1'), g4: setup.semName('g4'), g16: setup.semName('g16') };
  const g1 = new Gauge(names.g1);
  const g4 = new Gauge(names.g4);
  const g16 = new Gauge(names.g16);
  // The other shares live in another process.
  const sharesChild = rpc.start(path.join(__dirname, 'workers', 'shares.js'));
  await sharesChild.call('hold', { gauges: [{ name: names.g4, count: 3 }, { name: names.g16, count: 15 }] });
  if (g4.value !== 3 || g16.value !== 15) throw new Error(`gauge shares: read ${g4.value} and ${g16.value}, not 3 and 15`);

  // Diagnosis: the gauge sum through the binding alone (no TypeScript layer).
  const sharesLib = require('../dist/shares');
  const nativeSum = (gauge) => {
    const sum = binding.openSum(sharesLib.generationName(gauge));
    if (typeof sum === 'number' || typeof binding.sumReset(sum.id, binding.sumGeneration(sum.id), sharesLib.listShares(gauge).map((x) => x.name)) === 'number') {
      throw new Error(`openSum ${gauge} failed`);
    }
    return sum.id;
  };
  const sum1 = nativeSum(names.g1);
  const sum4 = nativeSum(names.g4);
  const sum16 = nativeSum(names.g16);
  // Diagnosis: the prototype that does the hot paths with Atomics on the
  // mapped counter words, no native call (bench/lib/mapped.js).
  const { MappedSemaphore, MappedGaugeReader } = require('./lib/mapped');
  const mapped = new MappedSemaphore(noop, setup.semName('m'));
  const mappedG16 = new MappedGaugeReader(noop, names.g16);
  if (mappedG16.value !== 15) throw new Error('mapped gauge prototype: wrong total');

  const cName = setup.semName('c');
  const cCase = (mode) => ({ timed: (n) => runJson(semloop, [mode, cName, String(n)]).ns });

  await section('calls', 'calls: the floor, ours, and the gauge', async () => {
    const { noop: f } = noop;
    const cases = [
      { id: 'noop1', label: 'no-op N-API call ×1', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) f(); } },
      { id: 'noop2', label: 'no-op N-API call ×2', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { f(); f(); } } },
      { id: 'cPostTry', label: 'C: sem_post + sem_trywait', unit: 'ns', ...cCase('posttry'), minIters: 10000 },
      { id: 'cValue', label: 'C: sem_getvalue', unit: 'ns', ...cCase('getvalue'), minIters: 10000 },
      { id: 'rawPostTry', label: 'minimal N-API post + tryWait (sem bound as data)', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { raw.post(); raw.tryWait(); } } },
      { id: 'rawPostTryShared', label: 'minimal N-API post + tryWait, from a call site that has seen 8 handles', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { rawShared.post(); rawShared.tryWait(); } } },
      { id: 'rawValue', label: 'minimal N-API getvalue (sem bound as data)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += raw.value(); sink += s; } },
      { id: 'bindPostTry', label: 'our binding, no TS layer: post() + tryWait()', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { slots[0] = hid; binding.post(); slots[0] = hid; binding.tryWait(); } } },
      { id: 'bindValue', label: 'our binding, no TS layer: value()', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += binding.value(hid); sink += s; } },
      { id: 'postTry', label: 'sem.post() + sem.tryWait()', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { sem.post(); sem.tryWait(); } } },
      { id: 'postTryShared', label: 'sem.post() + sem.tryWait(), after 8 semaphores were used through the same code', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { semShared.post(); semShared.tryWait(); } } },
      { id: 'value', label: 'sem.value', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += sem.value; sink += s; } },
      { id: 'gaugeRA', label: 'gauge.release() + gauge.acquire() (plain stores to its share, no call)', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { g1.release(); g1.acquire(); } } },
      { id: 'gaugeV1', label: 'gauge.value, 1 share (summed in JavaScript, no call)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += g1.value; sink += s; } },
      { id: 'gaugeV4', label: 'gauge.value, 4 shares (3 in another process)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += g4.value; sink += s; } },
      { id: 'gaugeV16', label: 'gauge.value, 16 shares (15 in another process)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += g16.value; sink += s; } },
      { id: 'bindSum4', label: 'our binding, no TS layer: sum(), 4 shares', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { slots[0] = sum4; binding.sum(); s += slots[1]; } sink += s; } },
      { id: 'bindSum1', label: 'our binding, no TS layer: sum(), 1 share', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { slots[0] = sum1; binding.sum(); s += slots[1]; } sink += s; } },
      { id: 'bindSum16', label: 'our binding, no TS layer: sum(), 16 shares', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { slots[0] = sum16; binding.sum(); s += slots[1]; } sink += s; } },
      { id: 'protoPostTry', label: 'prototype, Atomics on the mapped word: post + tryWait', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { mapped.post(); mapped.tryWait(); } } },
      { id: 'protoGaugeV16', label: 'prototype: gauge value, 16 shares, summed with Atomics.load on each word', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) s += mappedG16.value; sink += s; } },
    ];
    const measured = await measureGroup(cases, { rounds: CFG.rounds, batches: CFG.batches, batchMs: CFG.callsMs, log });
    addGroup('calls', 'Calls (ns per operation)', cases, measured);
  });

  await section('request', 'per request: release + value + acquire, ours and the alternatives', async () => {
    const { noop: f } = noop;
    const i32 = new Int32Array(new SharedArrayBuffer(4));
    const py = startPython();
    const lockfile = require('proper-lockfile');
    const counterFile = path.join(setup.WORK, `counter-${process.pid}`);
    fs.writeFileSync(counterFile, '0');
    const rmw = (d) => {
      lockfile.lockSync(counterFile, { realpath: false });
      try {
        fs.writeFileSync(counterFile, String(Number(fs.readFileSync(counterFile, 'utf8')) + d));
      } finally {
        lockfile.unlockSync(counterFile, { realpath: false });
      }
    };
    let client = null;
    if (redis) {
      const Redis = require('ioredis');
      client = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
      await client.connect();
    }
    const key = `${setup.PREFIX}busy`;
    try {
      const cases = [
        { id: 'oursGauge', label: 'ours: Gauge (4 shares) release + value + acquire (no native call)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { g4.release(); s += g4.value; g4.acquire(); } sink += s; } },
        { id: 'oursGaugeMw', label: 'ours: Gauge (4 shares) as busyMiddleware counts a request: releaseAndRead() + acquire()', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { s += g4.releaseAndRead(); g4.acquire(); } sink += s; } },
        { id: 'bindGauge', label: 'ours through the binding alone (no TS layer): post + sum (4 shares) + tryWait', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { slots[0] = hid; binding.post(); slots[0] = sum4; binding.sum(); s += slots[1]; slots[0] = hid; binding.tryWait(); } sink += s; } },
        { id: 'noop3', label: 'for scale: 3 no-op N-API calls', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) { f(); f(); f(); } } },
        { id: 'oursSem', label: 'ours: NamedSemaphore post + value + tryWait', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { sem.post(); s += sem.value; sem.tryWait(); } sink += s; } },
        { id: 'sab', label: 'SharedArrayBuffer + Atomics (one process only)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { Atomics.add(i32, 0, 1); s += Atomics.load(i32, 0); Atomics.sub(i32, 0, 1); } sink += s; } },
        { id: 'python', label: 'Python multiprocessing.Semaphore release + get_value + acquire', unit: 'ns', timed: py.timed, minIters: 100 },
        { id: 'fileLock', label: 'file counter under proper-lockfile (lockSync)', unit: 'ns', loop: (n) => { let s = 0; for (let i = 0; i < n; i++) { rmw(1); s += Number(fs.readFileSync(counterFile, 'utf8')); rmw(-1); } sink += s; } },
      ];
      if (client) {
        cases.push({
          id: 'redis',
          label: 'Redis INCR + GET + DECR (ioredis, loopback)',
          unit: 'ns',
          loop: async (n) => {
            for (let i = 0; i < n; i++) {
              await client.incr(key);
              sink += Number(await client.get(key));
              await client.decr(key);
            }
          },
        });
      }
      const measured = await measureGroup(cases, { rounds: CFG.rounds, batches: CFG.batches, batchMs: CFG.requestMs, log });
      addGroup('request', 'One request: the count raised, read, lowered (ns per request)', cases, measured);
    } finally {
      py.stop();
      client?.disconnect();
      fs.rmSync(counterFile, { force: true });
    }
  });
  await sharesChild.stop();

  await section('cluster', 'reading the count in a 2-worker cluster: prom-client AggregatorRegistry vs Gauge', async () => {
    const primary = rpc.start(path.join(__dirname, 'workers', 'cluster.js'), [], {
      env: { ...process.env, NSB_GAUGE: setup.semName('cluster') },
    });
    try {
      const first = await primary.call('start', { workers: 2 });
      if (first.aggregator !== 3 || first.gauge !== 3 || first.read !== 3) throw new Error(`the counts differ: ${JSON.stringify(first)}`);
      const cases = [
        { id: 'clusterValue', label: 'ours: gauge.value in the primary', unit: 'ns', timed: (n) => primary.call('value', { n }) },
        { id: 'clusterRead', label: 'ours: Gauge.read(name) (opens, lists, closes)', unit: 'ns', timed: (n) => primary.call('read', { n }), minIters: 10 },
        { id: 'aggregator', label: 'prom-client AggregatorRegistry.clusterMetrics()', unit: 'ns', timed: (n) => primary.call('aggregator', { n }), minIters: 10 },
      ];
      const measured = await measureGroup(cases, { rounds: CFG.rounds, batches: CFG.batches, batchMs: CFG.requestMs, log });
      addGroup('cluster', 'Reading the count in a 2-worker cluster (ns per read)', cases, measured);
    } finally {
      await primary.stop();
    }
  });

  await section('ping', 'wake-up latency: ping-pong between two processes', async () => {
    const sy = { ping: setup.semName('sping'), pong: setup.semName('spong') };
    const as = { ping: setup.semName('aping'), pong: setup.semName('apong') };
    const th = { ping: setup.semName('tping'), pong: setup.semName('tpong') };
    const script = path.join(__dirname, 'workers', 'pingpong.js');
    // Both sides of the 'thread' case wait through waiter threads instead of io_uring.
    const threadEnv = { env: { ...process.env, NAMED_SEMAPHORE_WAITER: 'thread' } };
    // Where the scheduler puts the two sides moves a wake-up's cost (a wake-up
    // across CPUs costs more on a VM), so the C, wait() and socket pairs run
    // a second time with both sides pinned to CPU 0 (taskset, from util-linux).
    const pin = ['-c', '0'];
    const pinned = { execPath: 'taskset', execArgv: [...pin, process.execPath] };
    const pinger = rpc.start(script, ['pinger']);
    const pingerT = rpc.start(script, ['pinger'], threadEnv);
    const pongA = rpc.start(script, ['ponger-async', as.ping, as.pong]);
    const pongT = rpc.start(script, ['ponger-async', th.ping, th.pong], threadEnv);
    const pongS = rpc.start(script, ['ponger-sync', sy.ping, sy.pong]);
    const echo = rpc.start(script, ['socket-ponger']);
    const echoP = rpc.start(script, ['socket-ponger'], pinned);
    const pp = { ping: setup.semName('pping'), pong: setup.semName('ppong') };
    const pingerP = rpc.start(script, ['pinger'], pinned);
    const pongP = rpc.start(script, ['ponger-async', pp.ping, pp.pong], pinned);
    const socketPath = path.join(os.tmpdir(), `${setup.PREFIX}pingpong.sock`);
    const socketPathP = path.join(os.tmpdir(), `${setup.PREFIX}pingpong-pinned.sock`);
    try {
      const mechanism = await pinger.call('mechanism');
      await echo.call('listen', { path: socketPath });
      await echoP.call('listen', { path: socketPathP });
      const cases = [
        { id: 'cPing', label: 'C: sem_wait ping-pong (two processes)', unit: 'ns', ...cCase('pingpong'), minIters: 100 },
        { id: 'waitPing', label: `ours: await wait() ping-pong (${mechanism})`, unit: 'ns', timed: (n) => pinger.call('wait', { ...as, n }), minIters: 20 },
        { id: 'waitThreadPing', label: 'ours: await wait() ping-pong, waiter threads (NAMED_SEMAPHORE_WAITER=thread)', unit: 'ns', timed: (n) => pingerT.call('wait', { ...th, n }), minIters: 20 },
        { id: 'cPingPinned', label: 'C: sem_wait ping-pong, both sides on CPU 0', unit: 'ns', timed: (n) => runJson('taskset', [...pin, semloop, 'pingpong', cName, String(n)]).ns, minIters: 100 },
        { id: 'waitPingPinned', label: `ours: await wait() ping-pong (${mechanism}), both sides on CPU 0`, unit: 'ns', timed: (n) => pingerP.call('wait', { ...pp, n }), minIters: 20 },
        { id: 'socketPing', label: "for scale: Node's own I/O, a 1-byte ping-pong over a Unix socket (event loop on both sides)", unit: 'ns', timed: (n) => pinger.call('socket', { path: socketPath, n }), minIters: 20 },
        { id: 'socketPingPinned', label: "for scale: the same socket ping-pong, both sides on CPU 0", unit: 'ns', timed: (n) => pingerP.call('socket', { path: socketPathP, n }), minIters: 20 },
        { id: 'waitSyncPing', label: 'ours: waitSync() ping-pong (blocks the thread)', unit: 'ns', timed: (n) => pinger.call('waitSync', { ...sy, n }), minIters: 20 },
      ];
      const measured = await measureGroup(cases, { rounds: CFG.rounds, batches: CFG.batches, batchMs: CFG.pingMs, log });
      addGroup('ping', 'Wake-up latency (ns per round trip = two cross-process wake-ups)', cases, measured);
    } finally {
      await Promise.all([pinger.stop(), pingerT.stop(), pongA.stop(200), pongT.stop(200), pongS.stop(200), echo.stop(), echoP.stop(), pingerP.stop(), pongP.stop(200)]);
      fs.rmSync(socketPath, { force: true });
      fs.rmSync(socketPathP, { force: true });
    }
  });

  await section('hammer', 'throughput: 1, 2 and 4 processes hammering one semaphore', async () => {
    const name = setup.semName('hammer');
    const script = path.join(__dirname, 'workers', 'hammer.js');
    const procs = [0, 1, 2, 3].map(() => rpc.start(script));
    try {
      await Promise.all(procs.map((p) => p.call('open', { name })));
      const run = async (k) => {
        const startAt = Date.now() + 30;
        const r = await Promise.all(procs.slice(0, k).map((p) => p.call('run', { name, ms: CFG.hammerMs, startAt })));
        return r.reduce((sum, x) => sum + (x.pairs / x.ns) * 1e9, 0);
      };
      const cases = [
        { id: 'cHammer', label: 'C: 1 process', unit: 'pairs/s', rate: async () => runJson(semloop, ['hammer', name, String(CFG.hammerMs)]).pairs / (CFG.hammerMs / 1000) },
        { id: 'hammer1', label: 'ours: 1 process', unit: 'pairs/s', rate: () => run(1) },
        { id: 'hammer2', label: 'ours: 2 processes', unit: 'pairs/s', rate: () => run(2) },
        { id: 'hammer4', label: 'ours: 4 processes', unit: 'pairs/s', rate: () => run(4) },
      ];
      const measured = await measureGroup(cases, { rounds: CFG.rounds, batches: 1, batchMs: CFG.hammerMs, log });
      addGroup('hammer', `Throughput: post + tryWait pairs per second, all processes together (${os.cpus().length} cores)`, cases, measured);
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
    }
  });

  await section('http', 'HTTP: node:http with and without busyMiddleware (autocannon)', async () => {
    if (!fs.existsSync(path.join(setup.ROOT, 'dist', 'http.js'))) {
      results.notes.push('HTTP: not measured: dist/http.js (busyMiddleware) does not exist yet.');
      log('  skipped: dist/http.js does not exist yet');
      return;
    }
    const autocannon = require('autocannon');
    const script = path.join(__dirname, 'workers', 'http-server.js');
    const server = rpc.start(script, [setup.semName('http')]);
    try {
      const port = await server.call('port');
      // Besides requests per second (what the target is about, but on 2 cores
      // the client and the server share the CPU), the server's own CPU time
      // per request, which the rest of the machine disturbs less.
      const cpuPerRequest = { httpPlain: [], httpBusy: [] }; // the A/A control's is not reported
      const hit = async (id, mode) => {
        await server.call('mode', { mode });
        const cpu0 = await server.call('cpu');
        const r = await autocannon({ url: `http://127.0.0.1:${port}/`, connections: 10, duration: CFG.httpSeconds });
        const cpu1 = await server.call('cpu');
        if (r.errors || r.non2xx) throw new Error(`autocannon: ${r.errors} errors, ${r.non2xx} non-2xx`);
        cpuPerRequest[id]?.push(((cpu1 - cpu0) * 1000) / r.requests.total);
        return r.requests.total / (r.duration || CFG.httpSeconds);
      };
      const cases = [
        { id: 'httpPlain', label: 'node:http, 1 process', unit: 'req/s', rate: () => hit('httpPlain', 'plain') },
        { id: 'httpBusy', label: 'node:http, 1 process, with busyMiddleware', unit: 'req/s', rate: () => hit('httpBusy', 'busy') },
        // The A/A control: the same plain server measured as a case of its
        // own, so the report shows how far two identical cases differ here.
        { id: 'httpPlainAgain', label: 'node:http, 1 process, plain again (the A/A control)', unit: 'req/s', rate: () => hit('httpPlainAgain', 'plain') },
      ];
      const measured = await measureGroup(cases, { rounds: CFG.httpRounds, batches: CFG.httpBatches, batchMs: 0, log });
      // Every run but the warm-up one, in the same rounds.
      const cpuCases = [
        { id: 'httpPlainCpu', label: 'server CPU per request, plain', unit: 'ns' },
        { id: 'httpBusyCpu', label: 'server CPU per request, with busyMiddleware', unit: 'ns' },
      ];
      const cpuMeasured = new Map(
        cpuCases.map((c, i) => {
          const values = cpuPerRequest[i === 0 ? 'httpPlain' : 'httpBusy'].slice(1);
          return [c.id, { case: c, values, median: median(values) }];
        }),
      );
      addGroup('http', `HTTP: requests per second (autocannon, 10 connections, ${CFG.httpSeconds} s a run, the best of ${CFG.httpBatches} a round)`, cases, measured);
      addGroup('httpCpu', 'HTTP: the server\'s CPU time per request (same runs)', cpuCases, cpuMeasured);

      // The middleware's own work, without the network: a request and a
      // response object made and finished, with and without it.
      const http = require('node:http');
      const net = require('node:net');
      const { busyMiddleware } = require('../dist/http.js');
      const mw = busyMiddleware(setup.semName('http-micro'));
      const socket = new net.Socket();
      const finishOne = (withMiddleware) => {
        const req = new http.IncomingMessage(socket);
        const res = new http.ServerResponse(req);
        if (withMiddleware) mw(req, res);
        res.emit('finish');
        res.emit('close');
      };
      const microCases = [
        { id: 'mwBase', label: 'request + response objects, finished (no network)', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) finishOne(false); } },
        { id: 'mwBusy', label: 'the same with busyMiddleware', unit: 'ns', loop: (n) => { for (let i = 0; i < n; i++) finishOne(true); } },
      ];
      const microMeasured = await measureGroup(microCases, { rounds: CFG.rounds, batches: CFG.batches, batchMs: CFG.requestMs, log });
      addGroup('httpMicro', 'HTTP: busyMiddleware\'s own work, in-process (ns per request)', microCases, microMeasured);
      const own = microMeasured.get('mwBusy').median - microMeasured.get('mwBase').median;
      const cpu = cpuMeasured.get('httpBusyCpu').median - cpuMeasured.get('httpPlainCpu').median;
      results.notes.push(
        `HTTP: busyMiddleware's own work measures ${(own / 1000).toFixed(2)} µs per request in-process; the server's CPU time per request grew by ${(cpu / 1000).toFixed(1)} µs ` +
          `(${cpuMeasured.get('httpPlainCpu').median > 0 ? ((cpu / cpuMeasured.get('httpPlainCpu').median) * 100).toFixed(0) : '?'} %). At ${Math.round(measured.get('httpPlain').median)} req/s a request takes ` +
          `${(1e6 / measured.get('httpPlain').median).toFixed(0)} µs of wall time here, so 2 % is about ${(2e4 / measured.get('httpPlain').median).toFixed(1)} µs.`,
      );
    } finally {
      await server.stop();
    }
  });

  await section('lost', 'lost updates: 2 peers × n × (+1, +1, −1) at once, expecting 2n', async () => {
    const script = path.join(__dirname, 'workers', 'lost.js');
    const peers = async (what, kind, n, args, final) => {
      const t0 = Date.now();
      const ps = [rpc.start(script), rpc.start(script)];
      try {
        const startAt = Date.now() + 300;
        const r = await Promise.all(ps.map((p) => p.call('run', { kind, n, startAt, ...args })));
        const got = await final();
        results.lost.push({ what, final: got, expected: 2 * n, ms: Math.max(...r.map((x) => x.ns)) / 1e6 });
        log(`  ${what.padEnd(44)} ${got} of ${2 * n} (${(Date.now() - t0) / 1000} s)`);
      } finally {
        await Promise.all(ps.map((p) => p.stop()));
      }
    };
    const L = CFG.lost;
    {
      const name = setup.semName('lost-sem');
      const s = new NamedSemaphore(name);
      await peers('ours: NamedSemaphore post/post/tryWait', 'sem', L.sem, { name }, () => s.value);
      s.close();
    }
    {
      const name = setup.semName('lost-gauge');
      await peers('ours: Gauge release/release/acquire', 'gauge', L.gauge, { name }, () => Gauge.read(name));
      Gauge.unlink(name);
    }
    const file = path.join(setup.WORK, `lost-${process.pid}`);
    fs.writeFileSync(file, '0');
    await peers('counter file, read-modify-write, no lock', 'file-nolock', L.fileNoLock, { file }, () => Number(fs.readFileSync(file, 'utf8')));
    fs.writeFileSync(file, '0');
    await peers('counter file under proper-lockfile (lock)', 'file-lock', L.fileLock, { file }, () => Number(fs.readFileSync(file, 'utf8')));
    fs.rmSync(file, { force: true });
    if (redis) {
      const key = `${setup.PREFIX}lost`;
      const Redis = require('ioredis');
      const client = new Redis({ port: redis.port, host: '127.0.0.1' });
      await peers('Redis INCR/INCR/DECR', 'redis', L.redis, { port: redis.port, key }, () => client.get(key).then(Number));
      client.disconnect();
    }
    {
      const t0 = Date.now();
      const r = runJson('python3', [path.join(__dirname, 'py', 'alt.py'), 'lost', String(L.python)]);
      results.lost.push({ what: 'Python multiprocessing.Semaphore', final: r.final, expected: r.expected, ms: Date.now() - t0 });
      log(`  ${'Python multiprocessing.Semaphore'.padEnd(44)} ${r.final} of ${r.expected}`);
    }
    for (const atomic of [true, false]) {
      const sab = new SharedArrayBuffer(8);
      const t0 = Date.now();
      const ws = [0, 1].map(() => new Worker(path.join(__dirname, 'workers', 'sab.js'), { workerData: { sab, n: L.sab, atomic } }));
      await Promise.all(ws.map((w) => new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))));
      await Promise.all(ws.map((w) => w.terminate()));
      const what = atomic ? 'SharedArrayBuffer + Atomics (2 threads)' : 'SharedArrayBuffer, plain ++ (2 threads)';
      const final = new Int32Array(sab, 0, 1)[0];
      results.lost.push({ what, final, expected: 2 * L.sab, ms: Date.now() - t0 });
      log(`  ${what.padEnd(44)} ${final} of ${2 * L.sab}`);
    }
  });

  await section('memory', 'memory: open/close cycles and wait() calls', async () => {
    const M = CFG.memory;
    const r = runJson(
      process.execPath,
      ['--expose-gc', path.join(__dirname, 'workers', 'memory.js'), setup.semName('mem'), String(M.cycles), String(M.waits), String(M.blockingEvery)],
      { maxBuffer: 1 << 20 },
    );
    results.memory = r.results;
    for (const p of r.results) log(`  ${p.n} ${p.label}: RSS ${p.rssGrowth >= 0 ? '+' : ''}${p.rssGrowth.toFixed(1)} MB in ${(p.ms / 1000).toFixed(1)} s`);
    // For scale: sem_open + sem_close in C.
    const n = quick ? 2000 : 20000;
    results.openCloseC = runJson(semloop, ['open', setup.semName('mem-c'), String(n)]).ns / n;
  });

  await section('idle', 'idle: CPU of pending waits while nothing is posted', async () => {
    const seconds = quick ? 1 : 3;
    results.idle = [];
    for (const mechanism of ['io_uring', 'thread']) {
      const env = { ...process.env, NAMED_SEMAPHORE_WAITER: mechanism === 'thread' ? 'thread' : '' };
      const r = runJson(process.execPath, [path.join(__dirname, 'workers', 'idle.js'), setup.semName(`idle-${mechanism}`), '1000', String(seconds)], { env });
      if (r.mechanism !== mechanism) continue; // no io_uring on this kernel
      results.idle.push(r);
      log(`  1000 waits on 1000 semaphores, ${mechanism}: ${(r.cpuShare * 100).toFixed(2)} % of a CPU, ${r.extraThreads} threads`);
    }
  });

  // Done measuring.
  sem.close();
  for (const id of [hid, sum1, sum16]) binding.close(id);
  for (const g of [g1, g4, g16]) g.close();
  for (const n of Object.values(names)) Gauge.unlink(n);
}

const savedResults = () => path.join(setup.WORK, `results${quick ? '-quick' : ''}.json`);

function writeReport() {
  // Only a full run of every section replaces bench/RESULTS.md and bench/ratios.svg.
  const partial = quick || only.length > 0;
  const suffix = quick ? '-quick' : only.length > 0 ? '-partial' : '';
  const out = report.write(results, { quick, dir: partial ? setup.WORK : __dirname, suffix });
  process.stdout.write(out.text);
  log(`\nwrote ${out.files.map((f) => path.relative(process.cwd(), f)).join(', ')} (${results.seconds.toFixed(0)} s in all)`);
}

if (reportOnly) {
  const saved = JSON.parse(fs.readFileSync(savedResults(), 'utf8'), (_, v) => (v && v.__map ? new Map(v.__map) : v));
  Object.assign(results, saved);
  writeReport();
  process.exit(0);
}

(async () => {
  let code = 0;
  try {
    await main();
  } catch (e) {
    results.errors.push({ section: 'bench', message: String(e?.stack ?? e) });
    log(`bench failed: ${e?.stack ?? e}`);
  } finally {
    rpc.killAll();
    await redisServer?.stop();
    setup.cleanup();
  }
  results.seconds = (Date.now() - started) / 1000;
  results.finished = new Date().toISOString();
  results.sink = sink;
  if (only.length > 0) results.notes.push(`Only these sections ran: ${only.join(', ')}.`);
  if (results.machine) {
    if (only.length === 0) {
      fs.mkdirSync(setup.WORK, { recursive: true });
      const json = JSON.stringify(results, (_, v) => (v instanceof Map ? { __map: [...v] } : typeof v === 'function' ? undefined : v));
      fs.writeFileSync(savedResults(), json);
    }
    writeReport();
  }
  if (results.errors.length > 0) {
    log(`\n${results.errors.length} section(s) failed: ${results.errors.map((e) => e.section).join('; ')}`);
    code = 1;
  }
  process.exit(code);
})();
