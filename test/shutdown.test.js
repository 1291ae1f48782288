'use strict';
// closeOnSignals with real signals: a server (and a cluster's primary) that
// gets SIGTERM stops accepting, finishes its requests in flight within the
// grace time, gives its count back and dies by the same signal, so the gauge
// is exact without a reap; SIGKILL after a grace period, as docker stop
// sends it, finds nothing left to count. A process that did not ask keeps
// SIGTERM's default action. Fixture: test/fixtures/shutdown-server.js.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');
const { spawn, spawnSync } = require('node:child_process');
const { Gauge } = require('..');
const { closeOnSignals } = require('../dist/cluster');
const { listShares } = require('../dist/shares');
const { reapGauge } = require('../dist/gauge');
const { uniqueName, fixture, until, gaugeTotal } = require('./helpers');

const read = gaugeTotal;

/** Starts the fixture (optionally under a command prefix such as unshare); resolves once it listens. */
async function start(args, prefix = [], { detached = false } = {}) {
  const argv = [...prefix, process.execPath, fixture('shutdown-server.js'), ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached });
  const server = { child, out: '', err: '', port: 0, pids: [] };
  child.stdout.on('data', (d) => (server.out += d));
  child.stderr.on('data', (d) => (server.err += d));
  server.ended = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const ready = await until(() => /^ready (\d+) ([\d ]+)$/m.exec(server.out), 15000);
  if (!ready) {
    child.kill('SIGKILL');
    throw new Error(`the fixture did not start\n${server.out}\n${server.err}`);
  }
  server.port = Number(ready[1]);
  server.pids = ready[2].split(' ').map(Number);
  return server;
}

/** A GET that resolves { status, body } or { error } (a reset, a refusal). */
function get(port, path, agent = false) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, reused: req.reusedSocket }));
      res.on('error', (error) => resolve({ error: error.code ?? error.message }));
    });
    req.on('error', (error) => resolve({ error: error.code ?? error.message }));
  });
}

/** Opens a TCP connection and closes it at once; resolves 'ok' or the error code. */
function connect(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      setTimeout(resolve, 20, 'ok');
    });
    socket.on('error', (error) => resolve(error.code));
  });
}

const requestsSeen = (server) => (server.out.match(/^req /gm) ?? []).length;

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills whatever the test left running; unlinks the gauge. */
function cleanup(server, name) {
  if (server) for (const pid of [server.child.pid, ...server.pids]) if (alive(pid)) process.kill(pid, 'SIGKILL');
  Gauge.unlink(name);
}

/** Exact without a reap: the total is 0 and no share is left in /dev/shm. */
function assertExact(name, server) {
  assert.equal(read(name), 0, `the gauge after the shutdown\n${server.out}\n${server.err}`);
  assert.deepEqual(listShares(name), [], 'no share left behind');
}

test('SIGTERM with no request in flight: dies by SIGTERM at once, the share is gone', async () => {
  const name = uniqueName('sd-idle');
  let server;
  try {
    server = await start(['single', name]);
    assert.match(server.out, /^listeners 1$/m, 'closeOnSignals listens for SIGTERM');
    assert.equal((await get(server.port, '/slow?ms=0')).status, 200); // opens the gauge
    assert.equal(listShares(name).length, 1);
    server.child.kill('SIGTERM');
    const { code, signal } = await server.ended;
    assert.deepEqual({ code, signal }, { code: null, signal: 'SIGTERM' }, server.err);
    assertExact(name, server);
  } finally {
    cleanup(server, name);
  }
});

test('SIGTERM with requests in flight: they are answered, new connections refused, then it dies by SIGTERM; exact', async () => {
  const name = uniqueName('sd-busy');
  let server;
  try {
    server = await start(['single', name]);
    const inFlight = [1, 2, 3].map(() => get(server.port, '/slow?ms=1500'));
    assert.ok(await until(() => requestsSeen(server) === 3), server.out);
    assert.equal(read(name), 3);
    server.child.kill('SIGTERM');
    // Connections only (no request, so nothing is counted) until one is refused.
    let refused = false;
    for (let i = 0; !refused && i < 100; i++) refused = (await connect(server.port)) === 'ECONNREFUSED';
    assert.ok(refused, 'no longer accepting');
    assert.equal(read(name), 3, 'still counted while they finish');
    const answers = await Promise.all(inFlight);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200],
      JSON.stringify(answers),
    );
    const { signal } = await server.ended;
    assert.equal(signal, 'SIGTERM', server.err);
    assertExact(name, server);
  } finally {
    cleanup(server, name);
  }
});

test('SIGTERM with a request in flight on a kept-alive connection: the connection closes once it is answered', async () => {
  const name = uniqueName('sd-keepalive');
  const agent = new http.Agent({ keepAlive: true });
  let server;
  try {
    // Keep-alive and grace far longer than the test waits: only closing the idle connection ends it in time.
    server = await start(['single', name, '--timeout', '300000', '--keep-alive-ms', '300000']);
    const first = await get(server.port, '/slow?ms=0', agent);
    assert.equal(first.status, 200);
    const inFlight = get(server.port, '/slow?ms=500', agent);
    assert.ok(await until(() => requestsSeen(server) === 2), server.out);
    const sent = Date.now();
    server.child.kill('SIGTERM');
    const answer = await inFlight;
    assert.equal(answer.status, 200);
    assert.equal(answer.reused, true, 'the second request reused the kept-alive connection');
    let ended = null;
    server.ended.then((e) => (ended = e));
    const why = () => `not ended ${Date.now() - sent} ms after the SIGTERM\n${server.out}\n${server.err}`;
    assert.ok(await until(() => ended, 60000, 50), why());
    assert.equal(ended.signal, 'SIGTERM', server.err);
    assertExact(name, server);
  } finally {
    agent.destroy();
    cleanup(server, name);
  }
});

test('SIGTERM, then SIGKILL after a grace period (docker stop): requests past the timeout are cut, exact before the SIGKILL', async () => {
  const name = uniqueName('sd-grace');
  let server;
  try {
    server = await start(['single', name, '--timeout', '300']);
    const hung = [1, 2].map(() => get(server.port, '/hang'));
    const done = get(server.port, '/slow?ms=100');
    assert.ok(await until(() => requestsSeen(server) === 3), server.out);
    const sent = Date.now();
    server.child.kill('SIGTERM');
    // docker stop -t 2: SIGKILL 2 s after the SIGTERM, if the process is still there.
    const docker = setTimeout(() => server.child.kill('SIGKILL'), 2000);
    const { signal, at } = await server.ended;
    clearTimeout(docker);
    assert.equal(signal, 'SIGTERM', `ended by its own SIGTERM, ${at - sent} ms after it, not by the SIGKILL\n${server.err}`);
    assert.equal((await done).status, 200);
    for (const h of await Promise.all(hung)) assert.ok(h.error, `a hung request is cut: ${JSON.stringify(h)}`);
    assertExact(name, server);
  } finally {
    cleanup(server, name);
  }
});

test('a process that did not ask: SIGTERM keeps its default action and the share stays until a reap', async () => {
  const name = uniqueName('sd-none');
  let server;
  try {
    server = await start(['single', name, '--no-close']);
    assert.match(server.out, /^listeners 0$/m, 'loading the package adds no SIGTERM listener');
    const hung = [1, 2].map(() => get(server.port, '/hang'));
    assert.ok(await until(() => requestsSeen(server) === 2), server.out);
    server.child.kill('SIGTERM');
    const { signal } = await server.ended;
    assert.equal(signal, 'SIGTERM');
    await Promise.all(hung);
    assert.equal(read(name), 2, 'the dead process still counts');
    assert.equal(reapGauge(name), 2);
    assert.equal(read(name), 0);
  } finally {
    cleanup(server, name);
  }
});

test('a cluster: the primary gets SIGTERM (or all its processes do, as systemctl stop does), the workers finish their requests and exit, the primary dies by SIGTERM; exact', async () => {
  for (const group of [false, true]) await clusterStop(group);
});

async function clusterStop(group) {
  const name = uniqueName('sd-cluster');
  let server;
  try {
    server = await start(['cluster', name], [], { detached: group });
    const inFlight = [1, 2, 3, 4].map(() => get(server.port, '/slow?ms=800'));
    assert.ok(await until(() => requestsSeen(server) === 4), server.out);
    const pids = new Set([...server.out.matchAll(/^req (\d+) /gm)].map((m) => Number(m[1])));
    assert.equal(pids.size, 2, `both workers hold requests: ${server.out}`);
    assert.equal(read(name), 4);
    // systemd's KillMode=control-group signals every process of the unit: here, of the process group.
    process.kill(group ? -server.child.pid : server.child.pid, 'SIGTERM');
    const answers = await Promise.all(inFlight);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 200],
      JSON.stringify(answers),
    );
    const { signal } = await server.ended;
    assert.equal(signal, 'SIGTERM', `${server.out}\n${server.err}`);
    for (const pid of server.pids) {
      assert.match(server.out, new RegExp(`^exit ${pid} SIGTERM$`, 'm'), 'each worker died by the SIGTERM passed on');
      assert.equal(alive(pid), false);
    }
    assertExact(name, server);
  } finally {
    cleanup(server, name);
  }
}

test('a cluster with hung requests: the workers cut them at their timeout; and workers that did not ask are reaped by the primary', async () => {
  for (const flags of [['--timeout', '300'], ['--no-close', '--primary-timeout', '300']]) {
    const name = uniqueName('sd-cluster-hung');
    let server;
    try {
      server = await start(['cluster', name, ...flags]);
      const hung = [1, 2, 3, 4].map(() => get(server.port, '/hang'));
      assert.ok(await until(() => requestsSeen(server) === 4), server.out);
      assert.equal(read(name), 4);
      server.child.kill('SIGTERM');
      const docker = setTimeout(() => server.child.kill('SIGKILL'), 4000);
      const { signal } = await server.ended;
      clearTimeout(docker);
      assert.equal(signal, 'SIGTERM', `${flags}: ${server.out}\n${server.err}`);
      for (const h of await Promise.all(hung)) assert.ok(h.error, JSON.stringify(h));
      assertExact(name, server);
    } finally {
      cleanup(server, name);
    }
  }
});

test('PID 1 of a PID namespace (a container without an init): the kernel drops the raised signal, so it exits 143', async (t) => {
  if (spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status !== 0) {
    t.skip('unshare --pid is not permitted here');
    return;
  }
  const name = uniqueName('sd-pid1');
  let server;
  try {
    server = await start(['single', name], ['unshare', '--pid', '--fork', '--mount-proc']);
    assert.deepEqual(server.pids, [1], 'the server is PID 1 in its namespace');
    assert.equal((await get(server.port, '/slow?ms=0')).status, 200);
    // unshare forks the server: signal the server itself, as docker stop signals PID 1.
    const [inner] = require('node:fs').readFileSync(`/proc/${server.child.pid}/task/${server.child.pid}/children`, 'utf8').trim().split(' ').map(Number);
    server.pids = [inner];
    process.kill(inner, 'SIGTERM');
    const { code } = await server.ended; // would never end if it waited for the dropped signal
    assert.equal(code, 143, server.err);
    assert.equal(read(name), 0);
    // Its share carries its inner PID, 1; a reader outside cannot judge it and
    // must not: it is gone because the server closed it.
    assert.deepEqual(listShares(name), []);
  } finally {
    cleanup(server, name);
  }
});

test('closeOnSignals checks its arguments', () => {
  const server = net.createServer();
  for (const bad of [undefined, 42, {}, null, [server, 7]]) {
    assert.throws(() => closeOnSignals(bad), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  assert.throws(() => closeOnSignals('a/b'), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => closeOnSignals(server, 5), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => closeOnSignals(server, { signals: 'SIGTERM' }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => closeOnSignals(server, { signals: [15] }), { code: 'ERR_INVALID_ARG_TYPE' });
  for (const signals of [[], ['SIGKILL'], ['SIGSTOP'], ['TERM'], ['constructor']]) {
    assert.throws(() => closeOnSignals(server, { signals }), { code: 'ERR_INVALID_ARG_VALUE' }, String(signals));
  }
  assert.throws(() => closeOnSignals(server, { timeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => closeOnSignals(server, { timeout: '5' }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.equal(process.listenerCount('SIGHUP'), 0, 'a failed call adds no listener');

  // The function it returns removes its listeners.
  const before = process.listenerCount('SIGTERM');
  const stop = closeOnSignals([server, 'x'], { signals: ['SIGTERM', 'SIGHUP'], timeout: 0 });
  assert.equal(process.listenerCount('SIGTERM'), before + 1);
  assert.equal(process.listenerCount('SIGHUP'), 1);
  stop();
  assert.equal(process.listenerCount('SIGTERM'), before);
  assert.equal(process.listenerCount('SIGHUP'), 0);
});
