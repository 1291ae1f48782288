'use strict';
// What hostile JavaScript, a foreign file in /dev/shm or a huge count can do:
// never crash, hang or give a wrong value. Each case that could crash runs in
// a child process, so a crash shows as a signal rather than ending the tests.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { NamedSemaphore, Gauge } = require('..');
const { PIDNS, uniqueName, run } = require('./helpers');

const root = path.join(__dirname, '..');
// Under AddressSanitizer (test/sanitize.sh) everything runs several times slower.
const slowdown = process.env.NAMED_SEMAPHORE_SANITIZE === '1' ? 4 : 1;
const { binding } = require('../dist/native');

// Whether the addon changes a semaphore's word itself (glibc's layout
// confirmed: x86-64 and arm64); elsewhere post(n) is n sem_post calls.
const hasValueWord = (() => {
  const name = uniqueName('layout');
  const handle = binding.open(name, true, false, 0o600, 0);
  binding.close(handle.id);
  return handle.word !== undefined;
})();
const cli = path.join(root, 'dist', 'cli.js');
const shmFile = (name) => `/dev/shm/sem.${name.slice(1)}`;

/** Runs `source` as a CommonJS script in a child Node; { code, signal, stdout, stderr }. */
function node(source, { args = [], timeoutMs = 60000, env } = {}) {
  return run(process.execPath, [...args, '-e', source], { timeoutMs, env });
}

function assertClean(r, what) {
  assert.equal(r.signal, null, `${what}: died of ${r.signal}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /FATAL ERROR|Segmentation|Bus error/, `${what}\n${r.stderr}`);
}

test('a file too short to hold a semaphore is refused with EINVAL, by the API and the CLI, never SIGBUS', async () => {
  const empty = uniqueName('empty');
  const short = uniqueName('short');
  fs.writeFileSync(shmFile(empty), '');
  fs.writeFileSync(shmFile(short), 'abc');
  for (const name of [empty, short]) {
    const r = await node(
      `const { NamedSemaphore } = require(${JSON.stringify(root)});
       for (const options of [{}, { create: false }]) {
         try { new NamedSemaphore(${JSON.stringify(name)}, options).value; console.log('opened'); }
         catch (e) { console.log(e.code, e.syscall); }
       }`,
    );
    assertClean(r, name);
    assert.equal(r.stdout, 'EINVAL sem_open\nEINVAL sem_open\n');
  }
  // The binding, given names the way glibc takes them (no '/', or several).
  const bare = empty.slice(1);
  const raw = await node(
    `const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native.js'))});
     console.log(['${bare}', '//${bare}'].map((n) => binding.open(n, false, false, 0, 0)).join(' '));`,
  );
  assertClean(raw, 'binding.open');
  assert.equal(raw.stdout, '22 22\n');
  const get = await run(process.execPath, [cli, 'get', empty]);
  assertClean(get, 'cli get');
  assert.equal(get.code, 1);
  assert.match(get.stderr, /EINVAL/);
  const ls = await run(process.execPath, [cli, 'ls', '--json']);
  assertClean(ls, 'cli ls');
  assert.equal(ls.code, 0, ls.stderr);
  const listed = JSON.parse(ls.stdout).find((e) => e.name === empty);
  assert.ok(listed, `${empty} is listed`);
  assert.equal(listed.kind, 'short', 'listed as what it is');
});

test('an empty file named like a share is no share: the gauge reads its true total', async () => {
  const gaugeName = uniqueName('g-bogus');
  const gauge = new Gauge(gaugeName);
  try {
    gauge.release(2);
    // Named as a share of this live process, so no reap removes it.
    const stat = fs.readFileSync('/proc/self/stat', 'latin1');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const bogus = `${gaugeName}~${PIDNS}.${process.pid}.${startTime}.deadbeef`;
    fs.writeFileSync(shmFile(bogus), '');
    try {
      const r = await node(
        `const { Gauge } = require(${JSON.stringify(root)});
         console.log(Gauge.read(${JSON.stringify(gaugeName)}));
         const g = new Gauge(${JSON.stringify(gaugeName)}); g.release(); console.log(g.value); g.close();`,
      );
      assertClean(r, 'reader');
      assert.equal(r.stdout, '2\n3\n');
      assert.equal(gauge.value, 2);
    } finally {
      fs.rmSync(shmFile(bogus), { force: true });
    }
  } finally {
    gauge.close();
    Gauge.unlink(gaugeName);
  }
});

test("open() survives a setter on Object.prototype that closes the handle it is building", async () => {
  const name = uniqueName('proto');
  const r = await node(
    `const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native.js'))});
     let closed = 0;
     Object.defineProperty(Object.prototype, 'id', { configurable: true, set(v) { closed++; binding.close(v); } });
     Object.defineProperty(Object.prototype, 'word', { configurable: true, set(v) { closed++; } });
     const t = binding.open(${JSON.stringify(name)}, true, false, 0o600, 3);
     console.log(closed, typeof t.id, new Int32Array(t.word)[0], binding.value(t.id), binding.close(t.id));`,
  );
  assertClean(r, 'open');
  assert.equal(r.stdout, '0 number 3 3 0\n');
});

test('sumReset() survives a getter in its names that closes the sum', async (t) => {
  const gauge = uniqueName('g-getter');
  const share = uniqueName('share');
  t.after(() => NamedSemaphore.unlink(gauge + '~gauge'));
  const r = await node(
    `const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native.js'))});
     binding.open(${JSON.stringify(gauge + '~gauge')}, true, false, 0o600, 0);
     binding.open(${JSON.stringify(share)}, true, false, 0o600, 5);
     const s = binding.openSum(${JSON.stringify(gauge + '~gauge')});
     const names = [${JSON.stringify(share)}, ${JSON.stringify(share)}];
     Object.defineProperty(names, 1, { get() { binding.close(s.id); for (let i = 0; i < 50; i++) binding.open(${JSON.stringify(share)}, false, false, 0, 0); return ${JSON.stringify(share)}; } });
     console.log(binding.sumReset(s.id, 0, names));`,
  );
  assertClean(r, 'sumReset');
  assert.equal(r.stdout, '9\n'); // EBADF: the sum closed meanwhile
});

// What a child left to choose gets: where io_uring is refused (phase 2 of npm
// test, a container) the io_uring runs would be the thread runs again.
const childMechanism = require('node:child_process')
  .execFileSync(process.execPath, ['-p', `require(${JSON.stringify(root)}).NamedSemaphore.waitMechanism`], {
    env: { ...process.env, NAMED_SEMAPHORE_WAITER: '' },
    encoding: 'utf8',
  })
  .trim();

for (const mechanism of ['io_uring', 'thread']) {
  const env = { ...process.env, NAMED_SEMAPHORE_WAITER: mechanism === 'thread' ? 'thread' : '' };
  const skip = mechanism === 'io_uring' && childMechanism !== 'io_uring' && 'io_uring waits are not available here; the (thread waits) twin runs';
  // Source that posts n to `name` from another process.
  const postN = (name, n) =>
    `require('node:child_process').execFileSync(process.execPath, ['-e', ${JSON.stringify(
      `const { NamedSemaphore } = require(${JSON.stringify(root)}); new NamedSemaphore(${JSON.stringify(name)}).post(${n})`,
    )}])`;

  test(`a settle() that throws, even undefined, keeps no other wait from settling (${mechanism} waits)`, { skip }, async () => {
    const name = uniqueName('settle-throw');
    const r = await node(
      `const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native.js'))});
       process.on('uncaughtException', (e) => console.log('uncaught', e?.message ?? e));
       const t = binding.open(${JSON.stringify(name)}, true, false, 0o600, 0);
       const settled = [];
       binding.setSettle((waitId, err) => {
         settled.push(waitId + ':' + err);
         if (waitId === 1) throw new Error('boom');
         if (waitId === 2) throw undefined;
         return true; // took it
       });
       console.log(binding.wait(t.id, 1, -1), binding.wait(t.id, 2, -1), binding.wait(t.id, 3, -1));
       setTimeout(() => ${postN(name, 3)}, 50);
       setTimeout(() => console.log(settled.join(' ')), 600);`,
      { env },
    );
    assertClean(r, 'settle');
    assert.equal(r.stdout, '0 0 0\nuncaught boom\nuncaught undefined\n1:0 2:0 3:0\n');
    const sem = new NamedSemaphore(name, { create: false });
    assert.equal(sem.value, 0); // every token reached settle(), none went back twice
    sem.close();
  });

  test(`an AbortSignal whose removeEventListener throws keeps no wait from settling (${mechanism} waits)`, { skip }, async () => {
    const name = uniqueName('signal-throw');
    const r = await node(
      `const { NamedSemaphore } = require(${JSON.stringify(root)});
       process.on('uncaughtException', (e) => console.log('uncaught', e.message));
       const sem = new NamedSemaphore(${JSON.stringify(name)});
       const signal = new AbortController().signal;
       signal.removeEventListener = () => { throw new Error('boom'); };
       const waits = [sem.wait({ signal }), sem.wait({ signal })];
       Promise.all(waits).then((results) => console.log(results.join(' '), sem.value));
       setTimeout(() => ${postN(name, 2)}, 50);`,
      { env },
    );
    assertClean(r, 'signal');
    assert.equal(r.stdout, 'uncaught boom\nuncaught boom\ntrue true 0\n');
  });

  test(`a worker whose settle closes the handle and exits loses no token (${mechanism} waits)`, { skip }, async () => {
    const name = uniqueName('settle-exit');
    const native = JSON.stringify(path.join(root, 'dist', 'native.js'));
    const worker = `const { binding } = require(${native});
      const t = binding.open(${JSON.stringify(name)}, true, false, 0o600, 0);
      delete t.word;
      const id = t.id;
      binding.setSettle(() => { binding.close(id); process.exit(0); });
      global.gc();
      binding.wait(id, 1, -1);
      binding.wait(id, 2, -1);
      require('node:worker_threads').parentPort.postMessage('waiting');`;
    const r = await node(
      `const { Worker } = require('node:worker_threads');
       const w = new Worker(${JSON.stringify(worker)}, { eval: true });
       w.on('message', () => ${postN(name, 2)});
       w.on('exit', (code) => console.log('worker exited', code));`,
      { args: ['--expose-gc'], env },
    );
    assertClean(r, 'worker');
    assert.equal(r.stdout, 'worker exited 0\n');
    // The worker ended inside settle(): no promise of that batch can reach
    // user code any more, so both tokens went back.
    const sem = new NamedSemaphore(name, { create: false });
    assert.equal(sem.value, 2);
    sem.close();
  });
}

test('worker threads terminated while loading the addon or calling listenQueue() never abort the process', { timeout: 120000 * slowdown }, async () => {
  const native = JSON.stringify(path.join(root, 'dist', 'native.js'));
  const r = await node(
    `const { Worker } = require('node:worker_threads');
     const net = require('node:net');
     const server = net.createServer().listen(0, '127.0.0.1', async () => {
       const port = server.address().port;
       for (let i = 0; i < 150; i++) {
         const w = new Worker("require(${native.replace(/"/g, '\\"')})", { eval: true });
         await new Promise((r) => setTimeout(r, Math.random() * 40));
         await w.terminate();
       }
       for (let i = 0; i < 100; i++) {
         const w = new Worker(\`const { binding } = require(${native}); require('node:worker_threads').parentPort.postMessage(0); for (;;) binding.listenQueue(\${port});\`, { eval: true });
         await new Promise((r) => w.once('message', r));
         await new Promise((r) => setTimeout(r, Math.random() * 5));
         await w.terminate();
       }
       server.close();
       console.log('survived');
     });`,
    { timeoutMs: 110000 },
  );
  assertClean(r, 'workers');
  assert.equal(r.stdout, 'survived\n', r.stderr);
});

test('post(n) adds n at once: another process never sees part of it, and n blocked waiters all wake', { timeout: 60000 * slowdown, skip: !hasValueWord && 'no confirmed layout: post(n) is n sem_post calls' }, async () => {
  const name = uniqueName('post-n');
  const sem = new NamedSemaphore(name);
  try {
    // A reader that records every value it sees until the count is up.
    const reader = node(
      `const { NamedSemaphore } = require(${JSON.stringify(root)});
       const s = new NamedSemaphore(${JSON.stringify(name)}, { create: false });
       const seen = new Set([s.value]);
       new NamedSemaphore(${JSON.stringify(name + '-ready')}).post();
       let v; do { v = s.value; seen.add(v); } while (v < ${1 << 22});
       console.log([...seen].sort((a, b) => a - b).join(' '));`,
    );
    const ready = new NamedSemaphore(name + '-ready');
    try {
      assert.ok(await ready.wait({ timeout: 30000 * slowdown }), 'the reader started');
    } finally {
      ready.close();
      ready.unlink();
    }
    sem.post(1 << 22);
    const r = await reader;
    assertClean(r, 'reader');
    assert.equal(r.stdout, `0 ${1 << 22}\n`);
    sem.tryWait();
    assert.equal(sem.value, (1 << 22) - 1);
  } finally {
    sem.close();
  }

  // Waiters blocked in glibc's sem_wait (waitSync) in two other processes.
  const name2 = uniqueName('post-n-wake');
  const sem2 = new NamedSemaphore(name2);
  try {
    const waiter = () =>
      node(`const { NamedSemaphore } = require(${JSON.stringify(root)});
            console.log(new NamedSemaphore(${JSON.stringify(name2)}, { create: false }).waitSync({ timeout: 20000 }));`);
    const waiters = [waiter(), waiter()];
    const { waiterCount, until } = require('./helpers');
    assert.ok(await until(() => waiterCount(name2) === 2, 10000 * slowdown), 'both waiters blocked');
    sem2.post(2);
    for (const r of await Promise.all(waiters)) assert.equal(r.stdout, 'true\n');
    assert.equal(sem2.value, 0);
  } finally {
    sem2.close();
  }
});

test('a gauge holding SEM_VALUE_MAX releases, acquires, closes and is reaped without one call per unit', { timeout: 60000 * slowdown, skip: !hasValueWord && 'no confirmed layout: one call per unit' }, async (t) => {
  // One call per unit took about 24 s for 2^31 - 1; the guard is the child's timeout.
  const gaugeName = uniqueName('g-huge');
  t.after(() => Gauge.unlink(gaugeName));
  const r = await node(
    `const { Gauge } = require(${JSON.stringify(root)});
     const g = new Gauge(${JSON.stringify(gaugeName)});
     g.release(2147483647);
     console.log(g.value);
     try { g.acquire(1); g.acquire(2147483647); } catch (e) { console.log(e.code, g.local); }
     g.acquire(2147483646);
     console.log(g.value, g.local);
     g.release(2147483000);
     g.close();
     console.log(Gauge.read(${JSON.stringify(gaugeName)}));
     const h = new Gauge(${JSON.stringify(gaugeName)});
     h.release(2147483000);
     process.kill(process.pid, 'SIGKILL');`,
    { timeoutMs: 15000 },
  );
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.equal(r.stdout, '2147483647\nERR_GAUGE_UNDERFLOW 2147483646\n0 0\n0\n');
  assert.equal(Gauge.read(gaugeName), 2147483000);
  const reaper = await node(
    `const { reapGauge } = require(${JSON.stringify(path.join(root, 'dist', 'gauge.js'))});
     console.log(reapGauge(${JSON.stringify(gaugeName)}));`,
    { timeoutMs: 15000 },
  );
  assert.equal(reaper.stdout, '2147483000\n', reaper.stderr);
  assert.equal(Gauge.read(gaugeName), 0);
});
