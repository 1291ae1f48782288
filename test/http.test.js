'use strict';
// named-semaphore/http, /fastify and /cluster end to end: a real 2-worker
// cluster (test/fixtures/http-cluster.js) under keep-alive load, while this
// process, outside the cluster, reads the gauge; aborts, throwing handlers,
// pipelining and a SIGKILLed worker must leave it exact. Repeated with
// Express, Fastify and plain node:http.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { Gauge } = require('..');
const { busyMiddleware, busyToken, pinoBusyProps } = require('../dist/http');
const { busyPlugin } = require('../dist/fastify');
const { reapOnWorkerExit, reapEvery } = require('../dist/cluster');
const { reapGauge } = require('../dist/gauge');
const { listShares } = require('../dist/shares');
const { uniqueName, leftovers, fixture, sleep, until, gaugeTotal } = require('./helpers');

const C = 8; // concurrent keep-alive clients
const DELAY = 300; // ms the slow handler takes
const LOAD_MS = 2000;

const read = gaugeTotal; // 0 before any worker has opened it (they open it on their first request)

/** Starts the cluster fixture; resolves once both workers listen. */
async function startCluster(framework, name, ...flags) {
  const child = spawn(process.execPath, [fixture('http-cluster.js'), framework, name, ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { child, stdout: [], stderr: [], port: 0, pids: [] };
  const lines = (stream, into) => {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      const parts = (rest + d).split('\n');
      rest = parts.pop();
      into.push(...parts);
    });
  };
  lines(child.stdout, server.stdout);
  lines(child.stderr, server.stderr);
  server.closed = new Promise((resolve) => child.on('close', resolve));
  server.stop = async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await server.closed;
    clearTimeout(timer);
  };
  const ready = await until(() => server.stdout.find((l) => l.startsWith('ready ')) ?? child.exitCode !== null, 15000);
  if (typeof ready !== 'string') {
    await server.stop();
    throw new Error(`the ${framework} cluster did not start\n${server.stderr.join('\n')}`);
  }
  const [port, ...pids] = ready.split(' ').slice(1).map(Number);
  Object.assign(server, { port, pids });
  return server;
}

/** One GET; resolves { status, worker, reused, body }. */
function get(port, path, agent) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, worker: Number(res.headers['x-worker']), reused: req.reusedSocket, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Samples the gauge every few ms until stopped; returns the samples. */
function sampler(name) {
  const samples = [];
  const timer = setInterval(() => samples.push(read(name)), 5);
  return () => {
    clearInterval(timer);
    return samples;
  };
}

async function assertBackToZero(name, why, timeoutMs = 2000) {
  const start = Date.now();
  assert.equal(await until(() => read(name) === 0, timeoutMs), true, `${why}: the gauge is ${read(name)}, not 0, after ${timeoutMs} ms`);
  return Date.now() - start;
}

/**
 * Opens requests that the server does not answer in time, waits until all are
 * counted, then goes away: every other one closes (FIN), the rest reset (RST).
 */
async function abandon(server, name, paths) {
  const reqs = paths.map((path) => http.get({ host: '127.0.0.1', port: server.port, path, agent: false }).on('error', () => {}));
  assert.equal(await until(() => read(name) === paths.length, 3000), true, `${paths.length} requests in flight, gauge ${read(name)}`);
  reqs.forEach((req, i) => (i % 2 ? req.destroy() : req.socket.resetAndDestroy()));
}

/** Raw HTTP/1.1 requests written at once on one connection. */
function pipelined(port, paths) {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  socket.text = '';
  socket.on('data', (d) => (socket.text += d));
  socket.on('error', () => {});
  socket.write(paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join(''));
  socket.responses = () => (socket.text.match(/^HTTP\/1\.1 200 /gm) ?? []).length;
  return socket;
}

for (const framework of ['express', 'fastify', 'plain']) {
  test(`${framework}: a 2-worker cluster, seen from outside`, { timeout: 40000 }, async (t) => {
    const name = uniqueName(`http-${framework}`);
    let server;
    try {
      server = await startCluster(framework, name);

      await t.test(`${C} keep-alive clients: the total reaches ${C}, the access logs say busy=1..${C}, then 0`, async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: C });
        const stop = sampler(name);
        const deadline = Date.now() + LOAD_MS;
        const results = [];
        await Promise.all(
          Array.from({ length: C }, async () => {
            while (Date.now() < deadline) results.push(await get(server.port, `/slow?ms=${DELAY}&t=load`, agent));
          }),
        );
        const samples = stop();
        agent.destroy();
        assert.ok(results.every((r) => r.status === 200 && r.body.startsWith('ok ')));
        assert.ok(results.filter((r) => r.reused).length >= results.length - C, 'keep-alive: sockets reused');
        assert.deepEqual(new Set(results.map((r) => r.worker)), new Set(server.pids), 'both workers served');
        assert.equal(Math.max(...samples), C, 'the total reached C and never passed it');
        const atC = samples.filter((v) => v === C).length / samples.length;
        assert.ok(atC > 0.5, `at C in steady state: ${(atC * 100).toFixed(0)}% of ${samples.length} samples`);
        t.diagnostic(`${results.length} requests; ${samples.length} samples, ${(atC * 100).toFixed(0)}% at ${C}`);
        await assertBackToZero(name, 'after the load');

        const busyOf = (line) => Number(/ busy=(\d+)$/.exec(line)?.[1]);
        const morganLines = () => server.stdout.filter((l) => l.startsWith('GET /slow?ms=300&t=load 200 busy='));
        await until(() => morganLines().length >= results.length, 2000);
        const logged = morganLines().map(busyOf);
        assert.equal(logged.length, results.length, 'one morgan line per request');
        assert.ok(logged.every((n) => n >= 1 && n <= C), `busy=${Math.min(...logged)}..${Math.max(...logged)}`);
        assert.equal(Math.max(...logged), C, 'some request arrived with all C in flight');

        const pinoLines = () =>
          server.stderr
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l))
            .filter((o) => o.req?.url === '/slow?ms=300&t=load');
        await until(() => pinoLines().length >= results.length, 2000);
        const json = pinoLines();
        assert.equal(json.length, results.length, 'one pino-http line per request');
        assert.ok(json.every((o) => Number.isInteger(o.busy) && o.busy >= 1 && o.busy <= C && o.res.statusCode === 200));
      });

      await t.test('clients that disconnect mid-request leave 0', async () => {
        const paths = Array.from({ length: C }, (_, i) => (i % 4 < 2 ? '/hang?t=abort' : '/slow?ms=1500&t=abort'));
        await abandon(server, name, paths);
        const ms = await assertBackToZero(name, 'after the clients went away');
        t.diagnostic(`back to 0 ${ms} ms after the disconnects`);
        await sleep(1600); // the slow ones now answer into closed connections
        assert.equal(read(name), 0);
      });

      await t.test('handlers that throw leave 0', async () => {
        if (framework === 'plain') {
          // Nothing answers: the request stays open, counted, until its connection closes.
          await abandon(server, name, Array.from({ length: 4 }, () => '/throw'));
          assert.ok(server.stderr.includes('uncaught: boom'));
        } else {
          const results = await Promise.all(Array.from({ length: 4 }, () => get(server.port, '/throw', false)));
          assert.deepEqual(
            results.map((r) => r.status),
            [500, 500, 500, 500],
          );
        }
        await assertBackToZero(name, 'after the throwing handlers');
        assert.ok(server.stdout.some((l) => /^GET \/throw (500|-) busy=\d+$/.test(l)), 'morgan logged them');
      });

      await t.test('3 pipelined requests on one connection: 0 after, the connection still open', async () => {
        const socket = pipelined(server.port, [1, 2, 3].map((i) => `/slow?ms=100&t=pipe${i}`));
        assert.equal(await until(() => socket.responses() === 3, 3000), true, socket.text);
        await assertBackToZero(name, 'after 3 pipelined responses');
        assert.equal(socket.destroyed, false);
        socket.destroy();
      });

      await t.test('3 pipelined requests, the connection closed before they are answered: 0', async () => {
        const socket = pipelined(server.port, [1, 2, 3].map((i) => `/slow?ms=400&t=pipex${i}`));
        assert.equal(await until(() => read(name) === 3, 3000), true, `gauge ${read(name)}`);
        socket.destroy();
        await assertBackToZero(name, 'pipelined requests queued behind a closed connection', 1000);
        await sleep(500);
        assert.equal(read(name), 0);
      });

      await t.test('a worker SIGKILLed with requests in flight: exact again within 1 s (reapOnWorkerExit)', async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: C });
        const ok = [];
        let failed = 0;
        const requests = Array.from({ length: C }, () =>
          get(server.port, '/slow?ms=2500&t=crash', agent).then(
            (r) => ok.push(r),
            () => failed++,
          ),
        );
        assert.equal(await until(() => read(name) === C, 3000), true, `all in flight: gauge ${read(name)}`);
        const killedAt = Date.now();
        process.kill(server.pids[0], 'SIGKILL');
        const exact = await until(() => failed > 0 && read(name) === C - failed, 1000, 2);
        const ms = Date.now() - killedAt;
        assert.equal(exact, true, `${failed} requests died with the worker; the gauge is ${read(name)}, not ${C - failed}, ${ms} ms later`);
        await sleep(Math.max(0, 1000 - ms));
        assert.equal(read(name), C - failed, 'still exact a second after the kill');
        await Promise.all(requests);
        agent.destroy();
        assert.ok(failed >= 1 && failed < C, `${failed} of ${C} were on the killed worker`);
        assert.ok(ok.every((r) => r.worker === server.pids[1] && r.status === 200));
        assert.ok(server.stdout.includes(`exit ${server.pids[0]} SIGKILL`));
        t.diagnostic(`${failed} of ${C} requests were on the killed worker; the gauge was exact ${ms} ms after the kill`);
        await assertBackToZero(name, 'after the surviving worker finished');
      });
    } finally {
      await server?.stop();
      Gauge.unlink(name);
    }
    assert.deepEqual(leftovers(), []);
  });
}

test('without reapOnWorkerExit, a SIGKILLed worker stays counted until a reap', { timeout: 20000 }, async () => {
  const name = uniqueName('http-noreap');
  let server;
  try {
    server = await startCluster('plain', name, '--no-reap');
    let failed = 0;
    const requests = Array.from({ length: 4 }, () => get(server.port, '/slow?ms=600', false).catch(() => failed++));
    assert.equal(await until(() => read(name) === 4, 3000), true);
    process.kill(server.pids[0], 'SIGKILL');
    await Promise.all(requests);
    assert.ok(failed >= 1);
    await sleep(300);
    assert.equal(read(name), failed, "the dead worker's share still counts");
    assert.equal(reapGauge(name), failed);
    assert.equal(read(name), 0);
  } finally {
    await server?.stop();
    Gauge.unlink(name);
  }
});

test('busyMiddleware in one process: a Gauge object, next(), req.busy, arguments', async () => {
  const name = uniqueName('http-local');
  const gauge = new Gauge(name);
  try {
    const other = new Gauge(name);
    other.release(5); // someone else's requests
    const seen = [];
    const server = http.createServer((req, res) => {
      busyMiddleware(gauge)(req, res, () => seen.push(['next', req.busy]));
      seen.push(['local', gauge.local]);
      res.end();
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    await get(server.address().port, '/', false);
    server.close();
    assert.deepEqual(seen, [
      ['next', 6],
      ['local', 1],
    ]);
    assert.equal(gauge.local, 0);
    assert.equal(gauge.value, 5);
    other.close();

    // A name opens one Gauge per process, on first use, shared by every middleware of that name.
    const byName = uniqueName('http-byname');
    try {
      const [a, b] = [busyMiddleware(byName), busyMiddleware(byName)];
      assert.equal(listShares(byName).length, 0, 'opened on first use');
      const server2 = http.createServer((req, res) => {
        a(req, res);
        b(req, res);
        seen.push(['twice', req.busy]);
        res.end();
      });
      await new Promise((r) => server2.listen(0, '127.0.0.1', r));
      await get(server2.address().port, '/', false);
      await get(server2.address().port, '/', false);
      server2.close();
      assert.deepEqual(seen.slice(2), [
        ['twice', 2],
        ['twice', 2],
      ]);
      assert.equal(listShares(byName).length, 1, 'one share for the process');
      assert.equal(Gauge.read(byName), 0);
    } finally {
      Gauge.unlink(byName);
    }

    assert.equal(busyToken({}), undefined, "morgan prints '-'");
    assert.equal(busyToken({ busy: 3 }), '3');
    assert.deepEqual(pinoBusyProps({ busy: 3 }), { busy: 3 });

    for (const bad of [undefined, 42, {}, null]) {
      assert.throws(() => busyMiddleware(bad), { code: 'ERR_INVALID_ARG_TYPE' });
      assert.throws(() => reapOnWorkerExit(bad), { code: 'ERR_INVALID_ARG_TYPE' });
    }
    assert.throws(() => busyMiddleware('a/b'), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => busyMiddleware('x'.repeat(250)), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => reapEvery(name, 0), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => reapEvery(name, '10'), { code: 'ERR_INVALID_ARG_TYPE' });
  } finally {
    gauge.close();
    Gauge.unlink(name);
  }
});

test('two busyMiddleware on one response (an app-wide gauge and a per-route one) both give back when it ends, on a kept-alive connection', async () => {
  const [all, api] = [new Gauge(uniqueName('http-all')), new Gauge(uniqueName('http-api'))];
  const [countAll, countApi] = [busyMiddleware(all), busyMiddleware(api)];
  const server = http.createServer((req, res) => {
    countAll(req, res);
    countApi(req, res);
    res.end(`${all.local} ${api.local}`);
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    for (let i = 0; i < 3; i++) {
      const body = await new Promise((resolve, reject) => {
        http.get({ port: server.address().port, agent }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.equal(body, '1 1', 'both count the request while it runs');
      // The connection stays open: only the response's end gives them back.
      assert.ok(await until(() => all.local === 0 && api.local === 0, 1000), `request ${i}: locals ${all.local} and ${api.local}`);
    }
  } finally {
    agent.destroy();
    server.close();
    for (const g of [all, api]) {
      g.close();
      Gauge.unlink(g.name);
    }
  }
});

test('counts on one connection finished in any order: the rest give back when it closes, each exactly once', () => {
  // Out of order, as when one of several counts is finished by hand (the
  // Fastify plugin does): what the connection's close finds must be exact.
  const { countRequest } = require('../dist/counting');
  const { EventEmitter } = require('node:events');
  const g = new Gauge(uniqueName('http-order'));
  const countFour = (socket) =>
    [0, 1, 2, 3].map(() => countRequest(g, { socket }, Object.assign(new EventEmitter(), { writableFinished: false, closed: false })));
  try {
    for (const order of [[0, 1, 2, 3], [3, 2, 1, 0], [3, 2], [2, 3], [1], [2, 0], [1, 3], []]) {
      const socket = Object.assign(new EventEmitter(), { destroyed: false });
      // A kept-alive connection: its first requests all done, then four more.
      for (const c of countFour(socket)) c.finish();
      const counts = countFour(socket);
      assert.equal(socket.listenerCount('close'), 1);
      assert.equal(g.local, 4);
      for (const i of order) counts[i].finish();
      for (const i of order) counts[i].finish(); // again: nothing more
      assert.equal(g.local, 4 - order.length, `after finishing ${order}`);
      socket.emit('close');
      assert.equal(g.local, 0, `after finishing ${order} and closing`);
      assert.equal(socket.listenerCount('close'), 0);
    }
  } finally {
    g.close();
    Gauge.unlink(g.name);
  }
});

test('reapEvery and reapOnWorkerExit: stop functions; a gauge that does not exist yet is fine', async () => {
  const name = uniqueName('http-reap');
  try {
    const stop = reapEvery(name, 5);
    const unhook = reapOnWorkerExit(name);
    const warnings = [];
    const onWarning = (w) => warnings.push(w);
    process.on('warning', onWarning);
    await sleep(30);
    stop();
    unhook();
    process.removeListener('warning', onWarning);
    assert.deepEqual(warnings, []);
    // A process that holds a share and is SIGKILLed: reapEvery removes it.
    const gauge = new Gauge(name); // before the death: its constructor's reap does not count
    const child = spawn(
      process.execPath,
      ['-e', `new (require(${JSON.stringify(require.resolve('..'))}).Gauge)(${JSON.stringify(name)}).release(3); console.log('ok'); setInterval(() => {}, 1000)`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise((r) => child.stdout.once('data', r));
    assert.equal(Gauge.read(name), 3);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    await sleep(50);
    assert.equal(Gauge.read(name), 3, 'nobody reaped yet');
    const stop2 = reapEvery(gauge, 20);
    assert.equal(await until(() => Gauge.read(name) === 0, 1000), true);
    stop2();
    gauge.close();
  } finally {
    Gauge.unlink(name);
  }
});

test('reapEvery warns once per cause of failure, not at every interval; again after a success', async () => {
  const gauge = new Gauge(uniqueName('http-reap-warn'));
  // The causes, one per reap: each run of one cause warns once.
  const causes = ['EACCES', 'EACCES', 'EACCES', 'EIO', 'EIO', null, 'EACCES', 'EACCES'];
  let calls = 0;
  gauge.reap = () => {
    const code = causes[Math.min(calls++, causes.length - 1)];
    if (code === null) return 0;
    throw Object.assign(new Error(`${code}: could not`), { code });
  };
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  try {
    const stop = reapEvery(gauge, 1);
    assert.equal(await until(() => calls >= causes.length + 5, 5000), true);
    stop();
    await sleep(10); // warnings are emitted on the next tick
    assert.deepEqual(
      warnings.map((w) => [w.code, w.message.match(/E[A-Z]+/)[0]]),
      [
        ['NAMED_SEMAPHORE_REAP_FAILED', 'EACCES'],
        ['NAMED_SEMAPHORE_REAP_FAILED', 'EIO'],
        ['NAMED_SEMAPHORE_REAP_FAILED', 'EACCES'],
      ],
    );
  } finally {
    process.removeListener('warning', onWarning);
    delete gauge.reap;
    gauge.close();
    Gauge.unlink(gauge.name);
  }
});

test('the fastify plugin checks its options', async () => {
  const fastify = require('fastify')();
  fastify.register(busyPlugin, {});
  await assert.rejects(fastify.ready(), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.gauge/ });
});
