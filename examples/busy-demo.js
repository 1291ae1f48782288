'use strict';
// The busy-server demo, run by `npm start`:
//
//   node examples/busy-demo.js [--short | --duration-scale X] [--gauge NAME] [--out DIR | --svg PATH] [--no-nginx]
//
// A node:cluster of 2 workers serves two endpoints behind busyMiddleware on one
// Gauge: GET /sleep answers after 200 ms on a timer, GET /cpu computes for
// 200 ms and blocks its worker meanwhile. The primary is also the load
// generator: 1, 2, 4, 8, 16 clients on /sleep, then 16 on /cpu, each client
// opening a new connection per request as a reverse proxy without upstream
// keep-alive does. Midway a worker dies by SIGKILL with requests in flight and
// reapOnWorkerExit keeps the gauge exact. Every 50 ms the primary samples
// busy (Gauge.read: requests in flight over all workers) and queued
// (listenQueue: connections waiting in the kernel for a worker to accept()
// them); at the end it prints a summary and writes an SVG chart of both,
// busy-demo.svg in the current folder (or --out DIR), and prints its path.
//
// Where nginx is installed, the clients go through it (examples/nginx-proxy.js),
// as in production: the workers send busy in an X-Busy header, nginx writes it
// into its access log next to its own upstream times (urt, uct), and the demo
// prints a few of those lines in the steps where the queue builds.
//
// Nothing is left behind: the workers are stopped and the gauge unlinked when
// the demo ends, on Ctrl-C (exit 130), SIGTERM (143) and SIGHUP (129).
const cluster = require('node:cluster');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const WORKERS = 2;
const DELAY_MS = 200; // what each request costs inside the app
const SAMPLE_MS = 50;
const LOG_EVERY_MS = 1500; // access log: a sample, at most one line per worker per 1.5 s (scaled)
const STEPS = [
  { clients: 1, path: '/sleep', seconds: 2 },
  { clients: 2, path: '/sleep', seconds: 2 },
  { clients: 4, path: '/sleep', seconds: 2 },
  { clients: 8, path: '/sleep', seconds: 3, kill: true },
  { clients: 16, path: '/sleep', seconds: 2.5 },
  { clients: 16, path: '/cpu', seconds: 4 },
];

const say = (line = '') => process.stdout.write(`${line}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

if (cluster.isPrimary) {
  runPrimary();
} else {
  runWorker();
}

// ---------------------------------------------------------------- worker ---

function runWorker() {
  const { Gauge } = require('named-semaphore');
  const { busyMiddleware } = require('named-semaphore/http');
  const gauge = new Gauge(process.env.BUSY_DEMO_GAUGE);
  const countBusy = busyMiddleware(gauge, { header: 'X-Busy' }); // for nginx's access log
  const logEveryMs = Number(process.env.BUSY_DEMO_LOG_MS);
  let lastLog = -Infinity;

  const server = http.createServer((req, res) => {
    countBusy(req, res);
    const urlPath = req.url.split('?')[0]; // the clients add ?step=N, for nginx's log // +1 now, -1 when the response ends or the connection closes; sets req.busy
    const start = performance.now();
    const reply = () => {
      const ms = performance.now() - start;
      if (start - lastLog >= logEveryMs) {
        lastLog = start;
        say(`  [worker ${process.pid}] ${req.method} ${urlPath} ${res.statusCode} ${ms.toFixed(0)} ms busy=${req.busy}`);
      }
      res.setHeader('server-timing', `app;dur=${ms.toFixed(1)}`);
      res.end('done\n');
    };
    if (urlPath === '/sleep') {
      setTimeout(reply, DELAY_MS);
    } else if (urlPath === '/cpu') {
      while (performance.now() - start < DELAY_MS); // a synchronous handler: nothing else runs in this worker
      reply();
    } else {
      res.statusCode = 404;
      res.end();
    }
  });

  // Told to die: SIGKILL itself in the middle of requests (two or more if they
  // come within 500 ms). Said and done in one go, so the count it prints is
  // exact: no request can start or end in between.
  const die = (since) => {
    const waited = performance.now() - since;
    if (gauge.local >= 2 || (gauge.local >= 1 && waited > 500) || waited > 2000) {
      fs.writeSync(1, `  [worker ${process.pid}] SIGKILL now, in the middle of ${gauge.local} request(s); busy=${gauge.value}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
    setTimeout(die, 2, since);
  };
  process.on('message', (message) => {
    if (message?.cmd === 'die') die(performance.now());
  });
  // Ctrl-C signals the whole process group; the primary stops the workers itself.
  process.on('SIGINT', () => {});
  server.listen(0, '127.0.0.1');
}

// ---------------------------------------------------------------- primary ---

function usage(message) {
  if (message) console.error(`busy-demo: ${message}`);
  console.error('usage: node examples/busy-demo.js [--short | --duration-scale X] [--gauge NAME] [--out DIR | --svg PATH] [--no-nginx]');
  process.exit(2);
}

function parseArgs(argv) {
  const options = { scale: 1, nginx: true, gauge: `/busy-demo-${process.pid}`, svg: undefined, out: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--short') options.scale = 0.25;
    else if (arg === '--duration-scale') {
      options.scale = Number(value());
      if (!(options.scale > 0 && options.scale <= 10)) usage('--duration-scale takes a number above 0, at most 10');
    } else if (arg === '--gauge') options.gauge = value();
    else if (arg === '--svg') options.svg = value();
    else if (arg === '--out') options.out = value();
    else if (arg === '--no-nginx') options.nginx = false;
    else if (arg === '--help' || arg === '-h') usage();
    else usage(`unknown argument ${arg}`);
  }
  options.svg = chartPath(options);
  return options;
}

/** Clients that each send one request at a time, on a new connection each (Connection: close). */
class LoadGenerator {
  constructor(port) {
    this.port = port;
    this.target = 0;
    this.path = '/sleep';
    this.step = -1;
    this.stopped = false;
    this.open = new Set(); // requests sent and not yet answered
    this.results = []; // { step, ok, ms, appMs, error }
    this.users = [];
  }

  setStep(index, { clients, path: urlPath }) {
    this.step = index;
    this.path = urlPath;
    this.target = clients;
    this.stopped = false;
    while (this.users.length < clients) this.users.push(this.#client(this.users.length));
  }

  /** Lets the open requests finish and sends no more until the next step. */
  async pause() {
    this.target = 0;
    await Promise.all(this.users);
    this.users = [];
  }

  /** Sends no more requests; the open ones finish. */
  stop() {
    this.stopped = true;
  }

  /** Sends no more requests and abandons the open ones. */
  abort() {
    this.stopped = true;
    for (const req of this.open) req.destroy();
  }

  async drain() {
    await Promise.all(this.users);
  }

  async #client(i) {
    while (!this.stopped && i < this.target) {
      const step = this.step;
      const result = await this.#request(`${this.path}?step=${step + 1}`);
      this.results.push({ step, ...result });
      if (result.error) await sleep(20); // e.g. refused while no worker listens
    }
  }

  #request(urlPath) {
    return new Promise((resolve) => {
      const start = performance.now();
      let settled = false;
      const settle = (result) => {
        if (settled) return;
        settled = true;
        this.open.delete(req);
        resolve({ ms: performance.now() - start, ...result });
      };
      const req = http.get({ host: '127.0.0.1', port: this.port, path: urlPath, agent: false }, (res) => {
        const appMs = Number(/dur=([\d.]+)/.exec(res.headers['server-timing'] ?? '')?.[1]);
        res.resume();
        res.on('end', () => settle({ ok: res.statusCode === 200, appMs }));
        res.on('error', (error) => settle({ ok: false, error: error.code ?? error.message }));
      });
      req.on('error', (error) => settle({ ok: false, error: error.code ?? error.message }));
      req.setTimeout(15000, () => req.destroy(new Error('timeout')));
      this.open.add(req);
    });
  }
}

/** nginx in front of the workers, or null (not installed, --no-nginx, or it failed to start: said why). */
async function startProxy(port, options) {
  const { findNginx, startNginx } = require('./nginx-proxy');
  const without = (why) => {
    say(`  ${why}: with nginx in front, the clients would go through it, and its access log`);
    say('  would carry busy= next to its own urt (upstream response time) and uct (upstream connect time).');
    return null;
  };
  if (!options.nginx) return without('no nginx (--no-nginx)');
  if (findNginx() === null) return without('nginx is not installed (apt-get install nginx)');
  try {
    const proxy = await startNginx(port);
    say(`  nginx in front on http://127.0.0.1:${proxy.port} (config and logs in ${proxy.dir}); its access log line:`);
    say('    ... urt=$upstream_response_time uct=$upstream_connect_time busy=$upstream_http_x_busy');
    say('  with proxy_hide_header X-Busy, so clients never see the header.');
    return proxy;
  } catch (error) {
    say(`  nginx did not start (${error.message.split('\n')[0]}): running without it`);
    return null;
  }
}

/** Prints nginx's slowest access-log lines (request id left out) of each step where the queue built. */
function showNginxLines(lines, steps, samples) {
  const { parseLine } = require('./nginx-proxy');
  const parsed = lines.map((line) => ({ line, ...parseLine(line) })).filter((l) => l.id !== undefined);
  say();
  say(`nginx's access log (${parsed.length} lines): urt and uct are what nginx waited for the app, busy= what the app saw`);
  for (const [index, step] of steps.entries()) {
    if (!samples.some((s) => s.step === index && s.queued >= WORKERS)) continue;
    const inStep = parsed.filter((l) => l.request.includes(`?step=${index + 1} `));
    say(`  step ${index + 1}, ${stepName(step)}, where the queue built: the 3 slowest of ${inStep.length}`);
    for (const l of inStep.sort((a, b) => b.urt - a.urt).slice(0, 3)) say(`    ${l.line.slice(l.id.length + 1)}`);
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const fmtMs = (ms) => (Number.isNaN(ms) ? '-' : `${Math.round(ms)} ms`);
const stepName = (step) => `${step.clients} client${step.clients === 1 ? '' : 's'} on GET ${step.path}`;

async function runPrimary() {
  const options = parseArgs(process.argv.slice(2));
  const { Gauge } = require('named-semaphore');
  const { listenQueue } = require('named-semaphore/http');
  const { reapOnWorkerExit } = require('named-semaphore/cluster');
  const scale = options.scale;
  const began = performance.now();

  let stopping = false;
  let gauge = null;
  let load = null;
  let sampler = null;
  let proxy = null; // nginx in front, where it is installed
  const exits = new Map(); // worker -> promise of its exit

  /** Stops everything and removes the gauge. Safe to call more than once. */
  let stopped = null;
  const stopAll = ({ kill }) => {
    stopped ??= (async () => {
      stopping = true;
      clearInterval(sampler);
      if (load) load.abort();
      if (proxy) await proxy.stop();
      const workers = Object.values(cluster.workers);
      for (const worker of workers) {
        if (kill) worker.process.kill('SIGKILL');
        else worker.disconnect(); // closes its server and lets it exit
      }
      let timer;
      const deadline = new Promise((resolve) => (timer = setTimeout(resolve, 5000, 'timeout')));
      const outcome = await Promise.race([Promise.all([...exits.values()]), deadline]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGKILL');
        await Promise.all([...exits.values()]);
      }
      if (gauge) gauge.close();
      Gauge.unlink(options.gauge);
    })();
    return stopped;
  };

  for (const event of ['uncaughtException', 'unhandledRejection']) {
    process.on(event, (error) => {
      console.error(error);
      stopAll({ kill: true }).finally(() => process.exit(1));
    });
  }
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(signal, () => {
      say(`\n${signal}: stopping the workers and the load, unlinking gauge ${options.gauge}`);
      stopAll({ kill: true }).finally(() => process.exit(code));
    });
  }

  try {
    gauge = new Gauge(options.gauge); // the primary's own object: it reads the total and holds nothing
    reapOnWorkerExit(gauge);

    // Every worker accepts from the one listening socket (as a pre-fork server
    // does), rather than the primary accepting and handing connections round.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: __filename, args: [] });
    const fork = () => {
      const worker = cluster.fork({ BUSY_DEMO_GAUGE: options.gauge, BUSY_DEMO_LOG_MS: String(LOG_EVERY_MS * scale) });
      exits.set(worker, new Promise((resolve) => worker.once('exit', resolve)));
      say(`  worker ${worker.process.pid} started`);
      return worker;
    };

    say(`busy-demo: ${WORKERS} workers (node:cluster), ${os.cpus().length} CPUs, Node ${process.version}, gauge ${options.gauge}`);
    say(`  GET /sleep answers after ${DELAY_MS} ms on a timer; GET /cpu computes for ${DELAY_MS} ms, blocking its worker`);
    say('  busy   = requests in flight over all workers: the Gauge, +1 per request in busyMiddleware');
    say('  queued = connections the kernel has set up that no worker has accept()ed yet (listenQueue)');
    say('  Each client sends one request at a time on a new connection, as a proxy without keep-alive does.');
    say(`  Access log: the workers print one line in ${(LOG_EVERY_MS * scale) / 1000} s each, with busy=N as counted when the request came in.`);

    // When a worker dies, reapOnWorkerExit (above) removes its share of the
    // gauge; this replaces the worker, as a cluster manager would.
    let killed = null;
    cluster.on('exit', (worker, code, signal) => {
      if (stopping) return;
      if (worker.process.pid !== killed?.pid) {
        console.error(`busy-demo: worker ${worker.process.pid} exited unexpectedly (${signal ?? `exit ${code}`})`);
        stopAll({ kill: true }).finally(() => process.exit(1));
        return;
      }
      setImmediate(() => {
        if (stopping) return;
        say(`  primary: worker ${worker.process.pid} died (${signal ?? `exit ${code}`}); reapOnWorkerExit removed its share: busy=${gauge.value}, the requests of the live worker`);
        say('  primary: starting a worker to replace it');
        fork();
      });
    });

    const listening = new Promise((resolve) => {
      let count = 0;
      cluster.on('listening', function onListening(_worker, address) {
        if (++count < WORKERS) return;
        cluster.off('listening', onListening);
        resolve(address.port);
      });
    });
    for (let i = 0; i < WORKERS; i++) fork();
    const port = await listening;
    const backlog = listenQueue(port).map((l) => l.backlog)[0];
    say(`  listening on http://127.0.0.1:${port} (accept queue limit ${backlog})`);
    proxy = await startProxy(port, options);

    const samples = [];
    const sample = () => {
      const t = (performance.now() - loadStart) / 1000;
      const queued = listenQueue(port).reduce((sum, l) => sum + l.queued, 0);
      samples.push({ t, busy: gauge.value, queued, clients: load.open.size, step: load.step });
    };
    load = new LoadGenerator(proxy ? proxy.port : port);
    const loadStart = performance.now();
    sampler = setInterval(sample, SAMPLE_MS);
    sample();

    const steps = [];
    for (const [index, step] of STEPS.entries()) {
      if (stopping) return;
      if (index > 0 && step.path !== STEPS[index - 1].path) await load.pause(); // a clean change of endpoint
      if (stopping) return;
      const t0 = (performance.now() - loadStart) / 1000;
      steps.push({ ...step, t0, t1: NaN });
      say();
      say(`step ${index + 1}/${STEPS.length}: ${stepName(step)} for ${(step.seconds * scale).toFixed(1)} s`);
      if (step.path === '/cpu') {
        say('  Now each request keeps its worker busy for 200 ms: a worker serves one at a time, busy is 2 at most,');
        say('  and new connections wait in the kernel until a worker calls accept(): that is queued. The app still');
        say('  reports 200 ms per request; the clients wait far longer.');
      }
      load.setStep(index, step);
      if (step.kill) {
        await sleep((step.seconds * scale * 1000) / 2);
        if (stopping) return;
        const victim = Object.values(cluster.workers)[0];
        killed = { t: (performance.now() - loadStart) / 1000, pid: victim.process.pid };
        say(`  primary: busy=${gauge.value}; worker ${killed.pid} is about to die by SIGKILL, as under the OOM killer`);
        victim.send({ cmd: 'die' });
        await sleep((step.seconds * scale * 1000) / 2);
      } else {
        await sleep(step.seconds * scale * 1000);
      }
      steps[index].t1 = (performance.now() - loadStart) / 1000;
      const inStep = samples.filter((s) => s.step === index);
      say(`  -> busy peak ${Math.max(...inStep.map((s) => s.busy))}, queued peak ${Math.max(...inStep.map((s) => s.queued))}`);
    }

    load.stop();
    await load.drain();
    let busyAfter = gauge.value;
    for (let i = 0; busyAfter !== 0 && i < 20; i++) {
      await sleep(25); // the last responses' 'finish' may trail their bytes
      busyAfter = gauge.value;
    }
    clearInterval(sampler);
    sample();
    const seconds = (performance.now() - began) / 1000;

    summarize({ steps, samples, results: load.results, killed, busyAfter, seconds });
    if (proxy) showNginxLines(proxy.lines(), steps, samples);
    fs.mkdirSync(path.dirname(options.svg), { recursive: true });
    fs.writeFileSync(options.svg, renderChart({ steps, samples, killed }));
    say(`  chart: ${options.svg}`);

    await stopAll({ kill: false });
    say(`done: the workers exited and gauge ${options.gauge} is unlinked`);
    if (busyAfter !== 0) {
      say(`busy-demo: the gauge read ${busyAfter} after the load, not 0`);
      process.exitCode = 1;
    }
  } catch (error) {
    console.error(error);
    await stopAll({ kill: true });
    process.exit(1);
  }
}

function summarize({ steps, samples, results, killed, busyAfter, seconds }) {
  const ok = results.filter((r) => r.ok);
  const failed = results.length - ok.length;
  const sorted = (rs, key) => rs.map((r) => r[key]).filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const loaded = samples.filter((s) => s.step >= 0);
  const peak = (key) => loaded.reduce((best, s) => (s[key] > best[key] ? s : best), loaded[0]);

  say();
  say(`summary (${seconds.toFixed(1)} s)`);
  say('  step  load                      requests   end to end p50 / p99   in the app p50   busy peak   queued peak');
  for (const [index, step] of steps.entries()) {
    const rs = ok.filter((r) => r.step === index);
    const e2e = sorted(rs, 'ms');
    const inStep = samples.filter((s) => s.step === index);
    say(
      `  ${String(index + 1).padEnd(4)}  ${stepName(step).padEnd(24)}  ${String(rs.length).padStart(8)}   ` +
        `${`${fmtMs(percentile(e2e, 50))} / ${fmtMs(percentile(e2e, 99))}`.padEnd(21)}  ${fmtMs(percentile(sorted(rs, 'appMs'), 50)).padStart(14)}   ` +
        `${String(Math.max(...inStep.map((s) => s.busy))).padStart(9)}   ${String(Math.max(...inStep.map((s) => s.queued))).padStart(11)}`,
    );
  }
  const all = sorted(ok, 'ms');
  const busyPeak = peak('busy');
  const queuedPeak = peak('queued');
  const failedNote = failed === 0 ? '' : ` (in flight in the killed worker${killed ? ` ${killed.pid}` : ''})`;
  say(`  requests     ${ok.length} answered, ${failed} failed${failedNote}`);
  say(`  latency      p50 ${fmtMs(percentile(all, 50))}, p99 ${fmtMs(percentile(all, 99))} at the clients; p50 ${fmtMs(percentile(sorted(ok, 'appMs'), 50))} inside the app`);
  say(`  peak busy    ${busyPeak.busy} (step ${busyPeak.step + 1}: ${stepName(steps[busyPeak.step])})`);
  say(`  peak queued  ${queuedPeak.queued} (step ${queuedPeak.step + 1}: ${stepName(steps[queuedPeak.step])})`);
  say(`  busy once the load stopped: ${busyAfter}${busyAfter === 0 ? ' (exact, although a worker died mid-request)' : ''}`);
  const cpu = steps.findIndex((step) => step.path === '/cpu');
  if (cpu >= 0) {
    const rs = ok.filter((r) => r.step === cpu);
    const app = fmtMs(percentile(sorted(rs, 'appMs'), 50));
    const e2e = fmtMs(percentile(sorted(rs, 'ms'), 50));
    say(`  In step ${cpu + 1} the app took ${app} per request (p50) but the clients waited ${e2e}: the rest was spent`);
    say('  waiting for a worker, visible as queued, not as busy. Watch both.');
  }
}

// ------------------------------------------------------------------ chart ---

/** Where the chart goes: --svg PATH, else busy-demo.svg in --out DIR or the current folder (one file, replaced by each run). */
function chartPath({ svg, out }) {
  if (svg !== undefined && out !== undefined) usage('give --out or --svg, not both');
  return path.resolve(svg ?? path.join(out ?? '.', 'busy-demo.svg'));
}

const escapeXml = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * The samples smoothed lightly: each the mean over the 5 samples (250 ms)
 * around it, within its load step. Requests of 200 ms on new connections make
 * raw 50 ms samples flicker at every gap between two requests.
 */
function smooth(samples, key) {
  return samples.map((s, i) => {
    let sum = 0;
    let n = 0;
    for (let j = Math.max(0, i - 2); j <= Math.min(samples.length - 1, i + 2); j++) {
      if (samples[j].step !== s.step) continue;
      sum += samples[j][key];
      n++;
    }
    return sum / n;
  });
}

/**
 * Where the lesson shows: the sample of the /cpu step with the most queued
 * while busy equals the number of workers (every worker busy, more waiting).
 */
function lessonPoint(samples, steps) {
  const cpu = steps.findIndex((step) => step.path === '/cpu');
  let best = null;
  for (const s of samples) {
    if (s.step === cpu && s.busy === WORKERS && s.queued > 0 && (best === null || s.queued > best.queued)) best = s;
  }
  return best;
}

/** An SVG chart of busy, queued and open client requests over time, hand-written. */
function renderChart({ steps, samples, killed }) {
  const W = 960;
  const H = 560;
  const m = { left: 56, right: 24, top: 128, bottom: 52 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const tMax = Math.max(samples.at(-1).t, steps.at(-1).t1);
  const vTop = Math.max(4, ...samples.map((s) => Math.max(s.busy, s.queued, s.clients)));
  const vStep = vTop <= 8 ? 1 : vTop <= 20 ? 2 : 5;
  const vMax = Math.ceil((vTop + 1) / vStep) * vStep;
  const x = (t) => (m.left + (t / tMax) * pw).toFixed(1);
  const y = (v) => (m.top + ph - (v / vMax) * ph).toFixed(1);
  const out = [];
  const halo = 'stroke="#ffffff" stroke-width="4" paint-order="stroke"';
  const text = (tx, ty, s, attrs = '') => out.push(`<text x="${tx}" y="${ty}"${attrs ? ` ${attrs}` : ''}>${escapeXml(s)}</text>`);

  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" fill="#222">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  text(m.left, 30, 'A busy server, seen from the outside: named-semaphore busy-demo', 'font-size="17" font-weight="bold"');
  text(m.left, 50, `${WORKERS} cluster workers; GET /sleep waits ${DELAY_MS} ms on a timer, GET /cpu computes ${DELAY_MS} ms; sampled every ${SAMPLE_MS} ms, each line the mean over 250 ms`, 'fill="#555"');

  // The series: busy a filled area under its line, queued a line, the
  // clients' open requests a dashed dark line drawn last, so that it shows
  // where it equals busy (every request in flight in a worker).
  const series = [
    { key: 'busy', color: '#1f6fb4', width: 2.5, dash: '', label: 'busy: requests in flight in all workers (Gauge)' },
    { key: 'queued', color: '#e4572e', width: 2.5, dash: '', label: 'queued: connections waiting for a worker to accept() them (listenQueue)' },
    { key: 'clients', color: '#333333', width: 1.5, dash: ' stroke-dasharray="6 4"', label: 'requests open at the clients (each on its own connection)' },
  ];
  series.forEach(({ color, width, dash, label }, i) => {
    const lx = i === 1 ? m.left + 330 : m.left;
    const ly = i === 2 ? 92 : 72;
    out.push(`<line x1="${lx}" y1="${ly - 4}" x2="${lx + 26}" y2="${ly - 4}" stroke="${color}" stroke-width="${width + 0.5}"${dash}/>`);
    text(lx + 32, ly, label);
  });

  // Load steps: shaded bands, labelled with their clients.
  for (const [index, step] of steps.entries()) {
    const fill = step.path === '/cpu' ? '#fdebd8' : index % 2 === 0 ? '#f3f5f8' : '#e8edf3';
    out.push(`<rect class="step" x="${x(step.t0)}" y="${m.top}" width="${(x(step.t1) - x(step.t0)).toFixed(1)}" height="${ph}" fill="${fill}"/>`);
    const mid = ((+x(step.t0) + +x(step.t1)) / 2).toFixed(1);
    text(mid, m.top - 22, `${step.clients} client${step.clients === 1 ? '' : 's'}`, 'text-anchor="middle" font-weight="bold" fill="#444"');
    text(mid, m.top - 8, step.path, 'text-anchor="middle" fill="#555"');
  }

  // Grid and axes.
  for (let v = 0; v <= vMax; v += vStep) {
    out.push(`<line x1="${m.left}" y1="${y(v)}" x2="${W - m.right}" y2="${y(v)}" stroke="#ccc" stroke-width="${v === 0 ? 1.5 : 0.6}"/>`);
    text(m.left - 8, (+y(v) + 4).toFixed(1), String(v), 'text-anchor="end" fill="#555"');
  }
  const tStep = tMax <= 8 ? 1 : tMax <= 30 ? 2 : 5;
  for (let t = 0; t <= tMax + 1e-9; t += tStep) {
    out.push(`<line x1="${x(t)}" y1="${m.top + ph}" x2="${x(t)}" y2="${m.top + ph + 5}" stroke="#555"/>`);
    text(x(t), m.top + ph + 19, `${t}`, 'text-anchor="middle" fill="#555"');
  }
  text(m.left + pw / 2, H - 10, 'seconds since the load started', 'text-anchor="middle" fill="#555"');
  text(16, m.top + ph / 2, 'count', `text-anchor="middle" fill="#555" transform="rotate(-90 16 ${m.top + ph / 2})"`);

  for (const { key, color, width, dash } of series) {
    const values = smooth(samples, key);
    const points = samples.map((s, i) => `${x(s.t)},${y(values[i])}`).join(' ');
    if (key === 'busy') {
      const area = `${x(samples[0].t)},${y(0)} ${points} ${x(samples.at(-1).t)},${y(0)}`;
      out.push(`<polygon fill="${color}" fill-opacity="0.16" stroke="none" points="${area}"/>`);
    }
    out.push(`<polyline id="${key}" fill="none" stroke="${color}" stroke-width="${width}" stroke-linejoin="round"${dash} points="${points}"/>`);
  }

  // The worker killed mid-request.
  if (killed) {
    out.push(`<line x1="${x(killed.t)}" y1="${m.top}" x2="${x(killed.t)}" y2="${m.top + ph}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="4 3"/>`);
    text((+x(killed.t) + 5).toFixed(1), m.top + 16, `SIGKILL worker ${killed.pid}: busy stays exact`, `fill="#c0392b" font-weight="bold" ${halo}`);
  }

  // The lesson, where it happens.
  const lesson = lessonPoint(samples, steps);
  if (lesson !== null) {
    // The text from the /cpu band's left edge: below the point, between
    // queued and busy, where there is room; else above it.
    const px = +x(lesson.t);
    const py = +y(lesson.queued);
    const band = steps[lesson.step];
    const tx = Math.min(+x(band.t0) + 8, W - m.right - 270);
    const below = +y(WORKERS) - py >= 120;
    const ty = below ? Math.min(py + 40, +y(WORKERS) - 70) : py - 85;
    out.push(`<circle id="lesson" cx="${px}" cy="${py}" r="5" fill="none" stroke="#222" stroke-width="1.5"/>`);
    if (below) out.push(`<line x1="${px}" y1="${py + 6}" x2="${px}" y2="${ty - 14}" stroke="#222" stroke-width="1"/>`);
    else out.push(`<line x1="${px}" y1="${py - 6}" x2="${px}" y2="${ty + 50}" stroke="#222" stroke-width="1"/>`);
    const lines = [
      `busy = ${WORKERS}: every worker is busy,`,
      `and ${lesson.queued} connections wait in the kernel.`,
      `The app still takes ${DELAY_MS} ms a request;`,
      'the clients wait far longer. Watch queued.',
    ];
    lines.forEach((line, i) => text(tx, ty + i * 15, line, `font-weight="${i < 2 ? 'bold' : 'normal'}" ${halo}`));
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
