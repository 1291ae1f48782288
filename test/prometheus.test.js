'use strict';
// named-semaphore/prometheus and `named-semaphore serve-metrics`, for real:
// Debian's prometheus server scrapes the serve-metrics sidecar and a worker's
// prom-client endpoint (both child processes) while other processes hold known
// parts of a gauge, and its HTTP query API must show the right values. Also a
// listen queue with connections waiting in it, read by the sidecar, by
// prom-client and by Prometheus.
const test = require('node:test');
const { before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const client = require('prom-client');
const { NamedSemaphore, Gauge } = require('..');
const { gaugeMetric, listenQueueMetric, metricsText } = require('named-semaphore/prometheus');
const { uniqueName, fixture, run, sleep } = require('./helpers');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const cli = (...args) => run(process.execPath, [CLI, ...args.map(String)], { timeoutMs: 15000 });

function onPath(command) {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const file = path.join(dir || '.', command);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {}
  }
  return null;
}
const PROMETHEUS = onPath('prometheus');
const underCI = process.env.CI === 'true';
const skipServer =
  PROMETHEUS === null && !underCI
    ? "Debian's prometheus server is not installed (apt-get install prometheus; .ci/run does); under CI=true this fails"
    : false;

// ---- processes: every one is stopped, and every name removed, however the tests end

const children = new Set();
const gauges = new Set();
let tmpDir;

/**
 * Starts a process and resolves with the match of `ready` on its stdout (and
 * the child). Rejects if it exits or stays silent for 10 s first.
 */
function start(command, args, ready, { input = 'pipe' } = {}) {
  const child = spawn(command, args.map(String), { stdio: [input, 'pipe', 'pipe'] });
  children.add(child);
  child.out = '';
  child.err = '';
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => (child.err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(command)} ${args.join(' ')}: not ready after 10 s\n${child.err}`)), 10000);
    child.stdout.on('data', (d) => {
      child.out += d;
      const m = ready.exec(child.out);
      if (m !== null) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    });
    child.on('error', reject);
    child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${path.basename(command)} ${args.join(' ')} exited (${code ?? signal}) before it was ready\n${child.err}`));
    });
  });
}

async function stop(child, signal = 'SIGKILL') {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  const result = await child.exited;
  children.delete(child);
  return result;
}

after(async () => {
  await Promise.all([...children].map((child) => stop(child)));
  for (const name of gauges) Gauge.unlink(name);
  if (tmpDir !== undefined) fs.rmSync(tmpDir, { recursive: true, force: true });
});

// ---- the world the tests look at -----------------------------------------------

const G = uniqueName('busy'); // a gauge: holders 2 + 5, worker 4 = 11
gauges.add(G);
const S = uniqueName('jobs"\\'); // a semaphore of value 5, whose name needs escaping in labels
const MISSING = uniqueName('missing'); // never made
const BACKLOG = 16;
const QUEUED = 3;

let sidecar; // { child, url }
let worker; // { child, port }
let listenPort;
const sockets = [];

async function fetchText(url) {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** The value of the one sample of `metric` with these labels in a text exposition, or undefined. */
function sample(text, metric, labels) {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)
    .join(',');
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{${want}} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

before(async () => {
  const sem = new NamedSemaphore(S, { initialValue: 5 });
  sem.close();
  const holders = [2, 5].map((hold) => start(process.execPath, [fixture('gauge-hold.js'), G, hold, 'idle'], /^held \d+ \d+\n/));
  const backlog = start(process.execPath, [fixture('prom-backlog.js'), BACKLOG], /^listening (\d+)\n/);
  const w = start(process.execPath, [fixture('prom-worker.js'), G, 4], /^ready (\d+)\n/);
  await Promise.all(holders);
  listenPort = Number((await backlog).match[1]);
  const { child, match } = await w;
  worker = { child, port: Number(match[1]) };
  // Connections the blocked process never accepts: they wait in its accept queue.
  for (let i = 0; i < QUEUED; i++) {
    const socket = net.connect(listenPort, '127.0.0.1');
    sockets.push(socket);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  }
  const s = await start(
    process.execPath,
    [CLI, 'serve-metrics', '--port', 0, '--listen-port', listenPort, G, S, MISSING],
    /^Serving (http:\/\/127\.0\.0\.1:(\d+)\/metrics)\n/,
  );
  sidecar = { child: s.child, url: s.match[1], port: Number(s.match[2]) };
});

after(() => {
  for (const socket of sockets) socket.destroy();
});

// ---- serve-metrics and the library, without the Prometheus server -------------------

test('serve-metrics: /metrics has the gauge total, the semaphore, the listen queue, in text format', async () => {
  const { status, type, text } = await fetchText(sidecar.url);
  assert.equal(status, 200);
  assert.equal(type, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(sample(text, 'named_semaphore_value', { name: G, kind: 'gauge' }), 11, text);
  assert.equal(sample(text, 'named_semaphore_value', { name: S, kind: 'semaphore' }), 5, text);
  assert.match(text, /named_semaphore_value\{name="[^"]*jobs\\"\\\\-\d+",kind="semaphore"\} 5\n/, 'label values escaped');
  assert.equal(text.match(/^# TYPE named_semaphore_value gauge$/gm).length, 1);
  assert.ok(text.includes(`# "${MISSING}": no such gauge or semaphore (yet)\n`), 'a missing name is a comment');
  assert.equal(sample(text, 'listen_queue_connections', { address: '127.0.0.1', port: listenPort }), QUEUED, text);
  assert.equal(sample(text, 'listen_queue_max_connections', { address: '127.0.0.1', port: listenPort }), BACKLOG, text);
  assert.ok(text.endsWith('\n'));

  const root = await fetchText(sidecar.url.replace(/metrics$/, ''));
  assert.equal(root.status, 200);
  assert.equal((await fetchText(sidecar.url.replace(/metrics$/, 'nope'))).status, 404);
  assert.equal((await fetch(sidecar.url, { method: 'POST' })).status, 405);
});

test('serve-metrics: a name made after it started shows up at the next scrape', async () => {
  const late = uniqueName('late');
  const { child, match } = await start(process.execPath, [CLI, 'serve-metrics', '--port', 0, late], /^Serving (\S+)\n/);
  assert.equal(sample((await fetchText(match[1])).text, 'named_semaphore_value', { name: late, kind: 'semaphore' }), undefined);
  new NamedSemaphore(late, { initialValue: 7 }).close();
  assert.equal(sample((await fetchText(match[1])).text, 'named_semaphore_value', { name: late, kind: 'semaphore' }), 7);
  assert.deepEqual(await stop(child, 'SIGTERM'), { code: 0, signal: null });
});

test('serve-metrics: SIGINT and SIGTERM end it with status 0, even with a kept-alive connection open', async () => {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    const { child, match } = await start(process.execPath, [CLI, 'serve-metrics', '--port', 0, G], /^Serving (\S+)\n/);
    const agent = new (require('node:http').Agent)({ keepAlive: true });
    await new Promise((resolve, reject) =>
      require('node:http')
        .get(match[1], { agent }, (res) => res.resume().on('end', resolve))
        .on('error', reject),
    );
    const t0 = Date.now();
    assert.deepEqual(await stop(child, signal), { code: 0, signal: null }, child.err);
    assert.ok(Date.now() - t0 < 2000, `${signal}: ended in ${Date.now() - t0} ms`);
    assert.equal(child.err, '');
    agent.destroy();
  }
});

test('serve-metrics: --help, usage errors (exit 2), a port in use (exit 1)', async () => {
  const help = await cli('serve-metrics', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: named-semaphore serve-metrics --port P/);
  assert.match(help.stdout, /--listen-port N/);
  assert.match((await cli('--help')).stdout, /serve-metrics/);
  for (const args of [
    [G],
    ['--port', 'x', G],
    ['--port', 70000, G],
    ['--port', 0],
    ['--port', 0, '--listen-port', 0, G],
    ['--port', 0, '--listen-port'],
    ['--port', 0, 'a/b'],
    ['--port', 0, '--bogus', G],
  ]) {
    const r = await cli('serve-metrics', ...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^named-semaphore: [^\n]+ \(see 'named-semaphore serve-metrics --help'\)\n$/);
  }
  const busy = await cli('serve-metrics', '--port', worker.port, G);
  assert.equal(busy.code, 1);
  assert.equal(busy.stderr, `named-semaphore: EADDRINUSE: address already in use, listen 127.0.0.1:${worker.port}\n`);
});

test('gaugeMetric: the total at collect time from a name, a Gauge or a NamedSemaphore; constant labels', async () => {
  const registry = new client.Registry();
  const own = new Gauge(G);
  try {
    gaugeMetric({ name: 'by_name', help: 'h', gauge: G, registry });
    gaugeMetric({ name: 'by_object', gauge: own, registry, labels: { pool: 'web' } });
    const sem = new NamedSemaphore(S, { create: false });
    gaugeMetric({ name: 'by_semaphore', help: 'h', gauge: sem, registry });
    gaugeMetric({ name: 'not_yet', help: 'h', gauge: uniqueName('nope'), registry });
    let text = await registry.metrics();
    assert.match(text, /^by_name 11$/m);
    assert.match(text, /^by_object\{pool="web"\} 11$/m);
    assert.match(text, /^# HELP by_object Value of the gauge|^# HELP by_object Value of '/m);
    assert.match(text, /^by_semaphore 5$/m);
    assert.match(text, /^not_yet 0$/m, 'a gauge nobody made yet is 0');
    own.release(3);
    text = await registry.metrics();
    assert.match(text, /^by_name 14$/m);
    assert.match(text, /^by_object\{pool="web"\} 14$/m);
    sem.close();
  } finally {
    own.close();
  }
  // prom-client's cluster aggregation takes one worker's total, not the sum over workers.
  const workers = await Promise.all(
    [1, 2].map(async () => {
      const r = new client.Registry();
      gaugeMetric({ name: 'busy_total', help: 'h', gauge: G, registry: r });
      return r.getMetricsAsJSON();
    }),
  );
  assert.match(await client.AggregatorRegistry.aggregate(workers).metrics(), /^busy_total 11$/m);
});

test('gaugeMetric: the default registry, registry null, bad arguments', async () => {
  const metric = gaugeMetric({ name: `nsem_default_${process.pid}`, help: 'h', gauge: G });
  try {
    assert.match(await client.register.metrics(), new RegExp(`^nsem_default_${process.pid} 11$`, 'm'));
  } finally {
    client.register.removeSingleMetric(`nsem_default_${process.pid}`);
  }
  const unregistered = gaugeMetric({ name: 'nowhere', help: 'h', gauge: G, registry: null });
  assert.equal((await unregistered.get()).values[0].value, 11);
  assert.equal(client.register.getSingleMetric('nowhere'), undefined);
  assert.ok(metric);

  for (const [options, code] of [
    [undefined, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'x', help: 'h' }, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'x', help: 'h', gauge: 42 }, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'x', help: 'h', gauge: 'a/b' }, 'ERR_INVALID_ARG_VALUE'],
    [{ name: 3, help: 'h', gauge: G }, 'ERR_INVALID_ARG_TYPE'],
    [{ name: 'x', help: 'h', gauge: G, registry: {} }, 'ERR_INVALID_ARG_TYPE'],
  ]) {
    assert.throws(() => gaugeMetric(options), { code }, JSON.stringify(options));
  }
});

test('listenQueueMetric and metricsText: the queued connections and the backlog', async () => {
  const registry = new client.Registry();
  const { queued, backlog } = listenQueueMetric({ port: listenPort, registry });
  assert.ok(queued && backlog);
  const text = await registry.metrics();
  assert.equal(sample(text, 'listen_queue_connections', { address: '127.0.0.1', port: listenPort }), QUEUED, text);
  assert.equal(sample(text, 'listen_queue_max_connections', { address: '127.0.0.1', port: listenPort }), BACKLOG, text);
  assert.equal(sample(metricsText({ ports: [listenPort] }), 'listen_queue_connections', { address: '127.0.0.1', port: listenPort }), QUEUED);
  assert.equal(metricsText({}), '');
  assert.throws(() => listenQueueMetric({ port: 70000, registry }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => listenQueueMetric({ port: [], registry }), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('without prom-client installed, gaugeMetric says what to install', async () => {
  // A child in which resolving 'prom-client' fails as if it were not installed.
  const code = `
    const Module = require('node:module');
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
      if (request === 'prom-client') throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
      return resolve.call(this, request, ...rest);
    };
    const p = require('named-semaphore/prometheus');
    process.stdout.write(p.metricsText({ names: [${JSON.stringify(G)}] }).includes(' 11\\n') ? 'text ok\\n' : 'text wrong\\n');
    try { p.gaugeMetric({ name: 'x', help: 'h', gauge: ${JSON.stringify(G)} }); } catch (e) { console.log(e.code + ' ' + e.message); }`;
  const r = await run(process.execPath, ['-e', code], { timeoutMs: 15000 });
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^text ok\nMODULE_NOT_FOUND named-semaphore\/prometheus: .*need prom-client.*npm install prom-client\n$/);
});

// ---- Prometheus itself ---------------------------------------------------------------

async function freePort() {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('Prometheus scrapes serve-metrics and a worker, and stores the right values', { skip: skipServer }, async (t) => {
  assert.ok(PROMETHEUS, 'prometheus is not on PATH (CI=true: it must be; .ci/run installs it with apt-get)');
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-prometheus-'));
  const config = path.join(tmpDir, 'prometheus.yml');
  fs.writeFileSync(
    config,
    `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: sidecar
    static_configs: [{ targets: ['127.0.0.1:${sidecar.port}'] }]
  - job_name: worker
    static_configs: [{ targets: ['127.0.0.1:${worker.port}'] }]
`,
  );
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  const prometheus = spawn(
    PROMETHEUS,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${path.join(tmpDir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.add(prometheus);
  prometheus.exited = new Promise((resolve) => prometheus.on('exit', (code, signal) => resolve({ code, signal })));
  prometheus.err = '';
  prometheus.stderr.on('data', (d) => (prometheus.err += d));

  /** Polls an instant query until check(result) holds; returns the result. Up to 20 s. */
  async function poll(query, check, what) {
    const end = Date.now() + 20000;
    let last;
    for (;;) {
      if (prometheus.exitCode !== null) assert.fail(`prometheus exited (${prometheus.exitCode}):\n${prometheus.err}`);
      try {
        const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}`);
        last = await res.json();
        if (last.status === 'success' && check(last.data.result)) return last.data.result;
      } catch (error) {
        last = error.message; // not listening yet
      }
      if (Date.now() > end) assert.fail(`${what}: ${query} never held in 20 s; last answer: ${JSON.stringify(last)}\n${prometheus.err}`);
      await sleep(200);
    }
  }
  const one = (value) => (result) => result.length === 1 && result[0].value[1] === String(value);
  const label = (v) => JSON.stringify(v); // a PromQL string

  await poll('up', (r) => r.length === 2 && r.every((s) => s.value[1] === '1'), 'both targets up');
  // (Prometheus applies new scrape targets at most every 5 s, so the first scrape comes after about 5 s.)
  t.diagnostic(`prometheus up and both targets scraped after ${Date.now() - t0} ms`);

  // The gauge's total, from the sidecar and from the worker's own prom-client endpoint.
  await poll(`named_semaphore_value{name=${label(G)},kind="gauge"}`, one(11), 'sidecar: gauge total');
  await poll(`app_requests_in_flight{job="worker"}`, one(11), 'worker: gauge total');
  await poll(`named_semaphore_value{name=${label(S)},kind="semaphore"}`, one(5), 'sidecar: semaphore');
  await poll(`listen_queue_connections{port="${listenPort}",address="127.0.0.1"}`, one(QUEUED), 'sidecar: queued');
  await poll(`listen_queue_max_connections{port="${listenPort}"}`, one(BACKLOG), 'sidecar: backlog');
  // The README's PromQL, on one host.
  const v = `named_semaphore_value{name=${label(G)}}`;
  await poll(`sum(${v})`, one(11), 'sum over hosts');
  await poll(`sum by (instance) (${v})`, one(11), 'per host');
  // (the README's subquery step is 15s, a typical scrape interval; here it is this scrape interval)
  await poll(`max_over_time(sum(${v})[1h:1s])`, one(11), 'peak of the total');
  await poll(`max_over_time(${v}[1h])`, one(11), 'peak per host');
  await poll(`sum by (instance) (listen_queue_connections{port="${listenPort}"}) > 0`, one(QUEUED), 'hosts with a queue');

  // Read at scrape time: the worker takes 10 more, both endpoints follow.
  worker.child.stdin.write('release 10\n');
  await poll(`named_semaphore_value{name=${label(G)},kind="gauge"}`, one(21), 'sidecar: gauge total after release');
  await poll(`app_requests_in_flight`, one(21), 'worker: gauge total after release');
  await poll(`max_over_time(${v}[1h])`, one(21), 'peak per host after release');
  t.diagnostic(`all values seen in Prometheus after ${Date.now() - t0} ms`);

  // A name that does not exist has no series at all.
  assert.deepEqual(await poll(`named_semaphore_value{name=${label(MISSING)}}`, () => true, 'missing'), []);

  assert.deepEqual(await stop(prometheus, 'SIGTERM'), { code: 0, signal: null }, prometheus.err);
});
