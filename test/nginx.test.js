'use strict';
// A real nginx (examples/nginx-proxy.js: its own prefix, config and logs in
// a temporary folder, on a free loopback port) in front of a 2-worker cluster
// (test/fixtures/nginx-app.js) that sends busy in an X-Busy header. nginx's
// access log must carry busy=N on every line, N the value the app saw for that
// request (matched by nginx's $request_id); clients never see the header. With
// blocking handlers and more clients than workers, busy stays at the worker
// count while nginx's urt and uct grow and listenQueue() shows the queue: the
// diagnosis, seen from nginx's side.
//
// Runs where nginx is installed (.ci/run installs it); skips elsewhere, except
// as root or under CI=true, where a missing nginx fails.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { spawn } = require('node:child_process');
const { Gauge } = require('..');
const { listenQueue } = require('../dist/http');
const { findNginx, startNginx, parseLine } = require('../examples/nginx-proxy');
const { uniqueName, fixture, until } = require('./helpers');

const WORKERS = 2;
const nginx = findNginx();
// CI (as root, from .ci/run, which installs nginx) must run it, never skip it.
const mustRun = process.env.CI === 'true' || process.getuid() === 0;
const skip = nginx === null && !mustRun ? 'nginx is not installed (apt-get install nginx; .ci/run does); as root or under CI=true this fails' : false;

/** Starts the app cluster; resolves { port, lines(), stop() }. */
async function startApp(name, backlog) {
  const child = spawn(process.execPath, [fixture('nginx-app.js'), name, String(backlog)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const ended = new Promise((resolve) => child.on('close', resolve));
  const ready = await until(() => /^ready (\d+)$/m.exec(out), 15000);
  const stop = async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
    await ended;
    clearTimeout(timer);
  };
  if (!ready) {
    await stop();
    throw new Error(`the app did not start\n${out}\n${err}`);
  }
  // app ID busy=N ms=T, by request id
  const seen = () => new Map([...out.matchAll(/^app (\S+) busy=(\d+) ms=([\d.]+)$/gm)].map((m) => [m[1], { busy: m[2], ms: Number(m[3]) }]));
  return { port: Number(ready[1]), seen, stop, output: () => out + err };
}

/** `clients` clients, each sending `each` requests one after another, each on a new connection. */
async function load(port, path, clients, each) {
  const headers = [];
  const one = () =>
    new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        headers.push(res.headers);
        res.resume();
        res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('error', reject);
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < each; i++) await one();
    }),
  );
  return headers;
}

/** nginx's lines, parsed, each with the app's own record of the request. */
function joined(proxy, app) {
  const seen = app.seen();
  return proxy.lines().map((line) => ({ line, ...parseLine(line), app: seen.get(parseLine(line)?.id) }));
}

/** Runs fn with the app and nginx in front of it; stops both whatever happens. */
async function withProxy(t, backlog, fn) {
  const name = uniqueName('nginx');
  let app;
  let proxy;
  try {
    app = await startApp(name, backlog);
    proxy = await startNginx(app.port);
    await fn({ app, proxy, name });
  } catch (error) {
    if (app) error.message += `\n--- app:\n${app.output().slice(-3000)}`;
    throw error;
  } finally {
    await proxy?.stop();
    await app?.stop();
    Gauge.unlink(name);
  }
}

test('every nginx access-log line carries busy=N, the value the app saw for that request; clients never see X-Busy', { skip }, async (t) => {
  await withProxy(t, 511, async ({ app, proxy, name }) => {
    const headers = await load(proxy.port, '/sleep?ms=20', 8, 25);
    assert.equal(headers.length, 200);
    for (const h of headers) assert.equal(h['x-busy'], undefined, 'proxy_hide_header keeps it from clients');
    const lines = await until(() => joined(proxy, app).length === 200 && joined(proxy, app), 5000);
    assert.ok(lines, `200 lines, got ${proxy.lines().length}`);
    t.diagnostic("a few of nginx's lines:");
    for (const l of lines.slice(100, 104)) t.diagnostic(l.line);
    for (const l of lines) {
      assert.match(l.line, / busy=\d+$/, l.line);
      assert.ok(l.app, `the app logged request ${l.id}`);
      assert.equal(l.busy, l.app.busy, `nginx and the app agree on request ${l.id}`);
    }
    const values = new Set(lines.map((l) => Number(l.busy)));
    assert.ok(values.size >= 2, `busy varied under load: ${[...values]}`);
    assert.ok(Math.max(...values) <= 8, 'never more than the clients');
    assert.equal(Gauge.read(name), 0);
  });
});

test('blocking handlers, more clients than workers: busy stays at the worker count while urt and uct grow and listenQueue() shows the queue', { skip }, async (t) => {
  const CPU_MS = 100;
  const BACKLOG = 4;
  await withProxy(t, BACKLOG, async ({ app, proxy, name }) => {
    const samples = [];
    const sampler = setInterval(() => {
      for (const l of listenQueue(app.port)) samples.push(l);
    }, 10);
    try {
      await load(proxy.port, `/cpu?ms=${CPU_MS}`, 16, 4);
    } finally {
      clearInterval(sampler);
    }
    const lines = await until(() => joined(proxy, app).length === 64 && joined(proxy, app), 5000);
    assert.ok(lines, `64 lines, got ${proxy.lines().length}`);
    const sorted = (key) => lines.map((l) => l[key]).sort((a, b) => a - b);
    const median = (xs) => xs[Math.floor(xs.length / 2)];
    const busy = sorted('busy').map(Number);
    const urt = sorted('urt');
    const uct = sorted('uct');
    const appMs = lines.map((l) => l.app?.ms).sort((a, b) => a - b);
    const queued = Math.max(...samples.map((s) => s.queued));
    t.diagnostic(
      `busy median ${median(busy)} max ${busy.at(-1)}; urt median ${median(urt)} s max ${urt.at(-1)} s; ` +
        `uct median ${median(uct)} s max ${uct.at(-1)} s; the app's own time median ${median(appMs)} max ${appMs.at(-1)} ms; ` +
        `listenQueue: queued up to ${queued}, backlog ${samples[0]?.backlog}`,
    );
    t.diagnostic("nginx's slowest lines:");
    for (const l of [...lines].sort((a, b) => b.urt - a.urt).slice(0, 3)) t.diagnostic(l.line);
    for (const l of lines) assert.equal(l.busy, l.app?.busy, `nginx and the app agree on request ${l.id}`);
    // A blocked worker serves one request at a time: busy is the worker count.
    assert.equal(median(busy), WORKERS, `busy: ${busy}`);
    assert.ok(busy.at(-1) <= WORKERS, `busy: ${busy}`);
    // The app says each request took ~CPU_MS; nginx saw far longer, spent waiting for a worker.
    // (Medians: on a shared machine one request's own time can stretch too.)
    const appMedian = median(appMs);
    assert.ok(median(urt) * 1000 > 2 * appMedian, `urt median ${median(urt)} s against the app's median ${appMedian} ms`);
    // Once the accept queue is full the kernel drops SYNs, and connect waits for a retransmission.
    assert.ok(uct.at(-1) * 1000 > 2 * appMedian, `uct max ${uct.at(-1)} s against the app's median ${appMedian} ms`);
    assert.ok(queued >= 1, `listenQueue saw the queue: ${queued}`);
    assert.equal(Gauge.read(name), 0);
  });
});
