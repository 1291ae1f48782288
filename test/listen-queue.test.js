'use strict';
// listenQueue(port) and `named-semaphore queue PORT`: a child process listens
// with a small backlog and blocks its event loop, so connections wait in the
// kernel's accept queue; both must report how many, and the limit.
const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { listenQueue } = require('../dist/http');
const { fixture, run, until } = require('./helpers');

const CLI = path.join(__dirname, '..', 'dist', 'cli.js');
const BACKLOG = 16;
const K = 5;

/** Starts the blocked listener; resolves { child, port, ipv6 }. */
async function blockedListener(seconds) {
  const child = spawn(process.execPath, [fixture('http-backlog.js'), BACKLOG, seconds], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    child.stdout.once('data', (d) => resolve(String(d)));
    child.once('exit', (code) => reject(new Error(`the listener exited (${code}) before listening`)));
  });
  const [port, family] = line.trim().split(' ').map(Number);
  return { child, port, ipv6: family === 6 };
}

function connect(port, host, n) {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve, reject) => {
          const socket = net.connect(port, host, () => resolve(socket));
          socket.once('error', reject);
        }),
    ),
  );
}

const find = (listeners, address) => listeners.find((l) => l.address === address);

test(`${K} connections wait in the accept queue of a blocked listener (backlog ${BACKLOG})`, { timeout: 30000 }, async (t) => {
  const { child, port, ipv6 } = await blockedListener(20);
  const sockets = [];
  try {
    let listeners = listenQueue(port);
    assert.deepEqual(find(listeners, '127.0.0.1'), { address: '127.0.0.1', family: 'IPv4', port, queued: 0, backlog: BACKLOG });

    sockets.push(...(await connect(port, '127.0.0.1', K)));
    if (ipv6) sockets.push(...(await connect(port, '::1', K - 2)));
    else t.diagnostic('no IPv6 loopback here: IPv4 only');
    // The handshake completes in the kernel: the connections are there, not accepted.
    assert.equal(await until(() => find(listenQueue(port), '127.0.0.1').queued === K, 2000), true);
    listeners = listenQueue(port);
    assert.deepEqual(find(listeners, '127.0.0.1'), { address: '127.0.0.1', family: 'IPv4', port, queued: K, backlog: BACKLOG });
    if (ipv6) {
      assert.deepEqual(find(listeners, '::1'), { address: '::1', family: 'IPv6', port, queued: K - 2, backlog: BACKLOG });
    }
    assert.equal(listeners.length, ipv6 ? 2 : 1, 'only the listeners on this port');

    const json = await run(process.execPath, [CLI, 'queue', String(port), '--json'], { timeoutMs: 10000 });
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), listeners);

    const text = await run(process.execPath, [CLI, 'queue', String(port)], { timeoutMs: 10000 });
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^ADDRESS\s+PORT\s+QUEUED\s+BACKLOG$/);
    assert.ok(lines.slice(1).some((l) => new RegExp(`^127\\.0\\.0\\.1\\s+${port}\\s+${K}\\s+${BACKLOG}$`).test(l)), text.stdout);
    if (ipv6) assert.ok(lines.slice(1).some((l) => new RegExp(`^::1\\s+${port}\\s+${K - 2}\\s+${BACKLOG}$`).test(l)), text.stdout);
    assert.equal(lines.length, 1 + listeners.length);
  } finally {
    for (const socket of sockets) socket.destroy();
    child.kill('SIGKILL');
  }
});

test('a port nothing listens on: [] from listenQueue, exit status 1 from the CLI', async () => {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  assert.deepEqual(listenQueue(port), []);
  const result = await run(process.execPath, [CLI, 'queue', String(port)], { timeoutMs: 10000 });
  assert.equal(result.code, 1);
  assert.equal(result.stdout, '');
  assert.equal(result.stderr, `named-semaphore: ENOENT: nothing listens on TCP port ${port}\n`);
});

test('bad ports', async () => {
  for (const port of [0, -1, 65536, 1.5, NaN, Infinity]) {
    assert.throws(() => listenQueue(port), { code: 'ERR_OUT_OF_RANGE', name: 'RangeError' }, String(port));
  }
  for (const port of ['80', undefined, null, 80n, {}]) {
    assert.throws(() => listenQueue(port), { code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' }, String(port));
  }
  for (const arg of ['0', '65536', 'http', '1e3', '08x']) {
    const result = await run(process.execPath, [CLI, 'queue', arg], { timeoutMs: 10000 });
    assert.equal(result.code, 2, `${arg}: ${result.stderr}`);
    assert.match(result.stderr, /^named-semaphore: PORT must be an integer from 1 to 65535/);
  }
  const missing = await run(process.execPath, [CLI, 'queue'], { timeoutMs: 10000 });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing PORT/);
});

test('a system error is a SemaphoreError with code, errno and syscall', () => {
  // The kernel's answer cannot be made to fail here; the shape is what the
  // binding's errno turns into.
  const { binding } = require('../dist/native');
  const original = binding.listenQueue;
  try {
    binding.listenQueue = () => 93; // EPROTONOSUPPORT: no sock_diag in this kernel
    assert.throws(() => listenQueue(80), {
      name: 'SemaphoreError',
      code: 'EPROTONOSUPPORT',
      errno: -93,
      syscall: 'sock_diag',
      message: /^EPROTONOSUPPORT: .*sock_diag/,
    });
  } finally {
    binding.listenQueue = original;
  }
});
