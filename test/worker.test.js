'use strict';
// worker_threads: the addon in several threads at once, terminate() with waits
// pending (no crash, no leftover thread, no token taken afterwards, and tokens
// taken but not yet settled given back), and what
// pending waits do to a worker whose script has ended: like pending I/O, they
// keep it alive until they settle.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Worker } = require('node:worker_threads');
const { once } = require('node:events');
const { NamedSemaphore } = require('..');
const { uniqueName, fixture, sleep, until, threadCount, waiterCount, slowdown } = require('./helpers');
const { mix } = require('./fixtures/worker-mix.js');

// A worker whose exit is recorded from the start. Listening for 'exit' only
// after awaiting a message is a race: when a worker posts and ends at once,
// Node can deliver the message and emit 'exit' in one turn of the loop,
// before the await returns, and the exit is never seen.
function startWorker(file, options) {
  const worker = new Worker(file, options);
  worker.exited = new Promise((resolve) => worker.once('exit', resolve));
  return worker;
}

// Resolves with the worker's exit code, or 'running' if it outlives ms.
function exitWithin(worker, ms) {
  return Promise.race([worker.exited, sleep(ms).then(() => 'running')]);
}

// Messages, in order; next() waits for the next one that matches.
function inbox(worker) {
  const queue = [];
  const waiting = [];
  worker.on('message', (m) => {
    const i = waiting.findIndex((w) => w.match(m));
    if (i >= 0) waiting.splice(i, 1)[0].resolve(m);
    else queue.push(m);
  });
  return {
    next(match = () => true, ms = 10000 * slowdown) {
      const i = queue.findIndex(match);
      if (i >= 0) return Promise.resolve(queue.splice(i, 1)[0]);
      return new Promise((resolve, reject) => {
        const w = { match, resolve };
        waiting.push(w);
        setTimeout(() => {
          if (waiting.includes(w)) reject(new Error(`no matching message within ${ms} ms`));
        }, ms).unref();
      });
    },
    queue,
  };
}

test('the addon loads in 4 workers at once plus the main thread; posts and waits on one name add up exactly', async () => {
  const name = uniqueName('wmix');
  const sem = new NamedSemaphore(name, { initialValue: 0 });
  const start = new Int32Array(new SharedArrayBuffer(4));
  const rounds = 2000;
  const workers = [];
  for (let i = 0; i < 4; i++) workers.push(startWorker(fixture('worker-mix.js'), { workerData: { name, rounds, start } }));
  const boxes = workers.map(inbox);
  const errors = workers.map((w) => once(w, 'error').then(([e]) => assert.fail(`worker failed: ${e.stack}`)));
  await Promise.race([Promise.all(boxes.map((b) => b.next((m) => m === 'loaded'))), ...errors]);
  Atomics.store(start, 0, 1);
  Atomics.notify(start, 0);
  const results = await Promise.race([
    Promise.all([mix(name, rounds), ...boxes.map((b) => b.next((m) => typeof m === 'object', 60000))]),
    ...errors,
  ]);
  const codes = await Promise.all(workers.map((w) => exitWithin(w, 5000 * slowdown)));
  assert.deepEqual(codes, [0, 0, 0, 0], 'every worker ends by itself once its handle is closed');
  const posts = results.reduce((n, r) => n + r.posts, 0);
  const takes = results.reduce((n, r) => n + r.takes, 0);
  assert.equal(posts, 5 * rounds * 2);
  assert.ok(takes > rounds, `only ${takes} takes`);
  assert.equal(sem.value, posts - takes);
  sem.close();
});

// Workers wait as the main thread does (see the last test).
const ring = NamedSemaphore.waitMechanism === 'io_uring';

// One worker that opens `handles` handles on name, queues waits on them, and
// is terminated. Checks that the process is left with no more threads than
// before, that glibc counts no waiter of it any more, and that the value is
// what it should be.
async function terminateRound(sem, mode, round) {
  const handles = 3;
  const before = threadCount();
  const worker = startWorker(fixture('worker-pending.js'), { workerData: { name: sem.name, handles, waits: 4, mode } });
  const box = inbox(worker);
  await box.next((m) => m === 'ready');
  // Each handle with waits is in glibc's count of waiters (through the
  // worker's ring, or the waiter thread that sleeps on their futex words:
  // one for all three, or one each where there is no futex_waitv).
  const threads = before + 1 + (ring ? 0 : 1);
  assert.ok(threadCount() >= threads, `round ${round}: ${threadCount()} threads, ${before} before`);
  assert.ok(await until(() => waiterCount(sem.name) === handles, 2000), `round ${round}: ${waiterCount(sem.name)} waiters`);
  let posted = 0;
  if (mode === 'busy') {
    // The spinning worker never runs its event loop. Waiter threads take
    // these tokens but never settle them in JavaScript: they were never
    // delivered, so terminate() must give them back. A ring leaves them be
    // (its loop would take them).
    posted = 3;
    sem.post(posted);
    if (ring) {
      await sleep(50);
      assert.equal(sem.value, posted, `round ${round}: a ring whose loop never ran took tokens`);
    } else {
      assert.ok(await until(() => sem.value === 0, 2000), `round ${round}: the waiter threads did not take the tokens`);
    }
  }
  await sleep(round % 5); // vary where terminate() lands
  assert.equal(await worker.terminate(), 1, `round ${round}: terminate() resolves with exit code 1`);
  const back = await until(() => threadCount() <= before, 1000);
  assert.ok(back, `round ${round} (${mode}): ${threadCount()} threads a second after terminate(), ${before} before`);
  assert.deepEqual(box.queue.filter((m) => m === 'took'), [], 'no wait was settled in the worker');
  assert.ok(await until(() => waiterCount(sem.name) === 0, 1000), `round ${round} (${mode}): ${waiterCount(sem.name)} waiters left`);
  assert.ok(await until(() => sem.value === posted, 500), `round ${round} (${mode}): value ${sem.value} after terminate(), expected ${posted}`);
  // Nothing of the worker takes tokens any more.
  sem.post(2);
  await sleep(30);
  assert.equal(sem.value, posted + 2, `round ${round} (${mode})`);
  while (sem.tryWait());
}

async function warmUp(name) {
  // One worker first, so that whatever Node starts once per process for
  // workers is not counted against the rounds.
  const warm = startWorker(fixture('worker-pending.js'), { workerData: { name, handles: 1, waits: 1, mode: 'idle' } });
  await inbox(warm).next((m) => m === 'ready');
  await warm.terminate();
  await sleep(100);
}

test('terminate() with waits pending, 20 times: no crash, no thread left, no token taken', async () => {
  const sem = new NamedSemaphore(uniqueName('wterm'));
  await warmUp(sem.name);
  for (let round = 0; round < 20; round++) await terminateRound(sem, 'idle', round);
  sem.close();
});

test(
  'terminate() of a worker that never ran its event loop again: tokens its waiter threads took are given back, a ring takes none',

  async () => {
    const sem = new NamedSemaphore(uniqueName('wterm'));
    await warmUp(sem.name);
    try {
      for (let round = 0; round < 10; round++) await terminateRound(sem, 'busy', round);
    } finally {
      sem.close();
    }
  },
);

test('terminate() of a worker blocked in waitSync takes effect once the call returns', async () => {
  const name = uniqueName('wsync');
  const sem = new NamedSemaphore(name);
  const before = threadCount();
  const worker = startWorker(fixture('worker-pending.js'), { workerData: { name, handles: 2, waits: 2, mode: 'sync' } });
  const box = inbox(worker);
  await box.next((m) => m === 'ready');
  await sleep(20);
  const started = Date.now();
  assert.equal(await worker.terminate(), 1);
  const took = Date.now() - started;
  // A native call cannot be interrupted: terminate() waits for its timeout.
  assert.ok(took < 2000, `terminate() took ${took} ms`);
  assert.ok(await until(() => threadCount() <= before, 1000), `${threadCount()} threads, ${before} before`);
  sem.post();
  await sleep(30);
  assert.equal(sem.value, 1);
  sem.close();
});

test('a worker whose script ended with a wait pending stays alive until the wait settles, then ends', async () => {
  const name = uniqueName('wlinger');
  const sem = new NamedSemaphore(name);
  const worker = startWorker(fixture('worker-linger.js'), { workerData: { name, mode: 'forever' } });
  const box = inbox(worker);
  await box.next((m) => m === 'waiting');
  // Like pending I/O: the pending wait keeps the worker's event loop alive.
  assert.equal(await exitWithin(worker, 500), 'running');
  assert.equal(sem.value, 0);
  sem.post();
  assert.deepEqual(await box.next((m) => typeof m === 'object'), { acquired: true });
  assert.equal(await exitWithin(worker, 2000), 0);
  assert.equal(sem.value, 0);
  sem.close();
});

test('a worker with a timed wait pending lives until the timeout, then ends', async () => {
  const name = uniqueName('wlinger');
  const sem = new NamedSemaphore(name);
  const started = Date.now();
  const worker = startWorker(fixture('worker-linger.js'), { workerData: { name, mode: 'timeout' } });
  const box = inbox(worker);
  await box.next((m) => m === 'waiting');
  assert.deepEqual(await box.next((m) => typeof m === 'object'), { acquired: false });
  assert.equal(await exitWithin(worker, 2000), 0);
  const took = Date.now() - started;
  assert.ok(took >= 200, `ended after ${took} ms, before its 200 ms timeout`);
  assert.equal(sem.value, 0);
  sem.close();
});

test('a worker with an open, unused, unclosed semaphore ends by itself', async () => {
  const name = uniqueName('wlinger');
  const sem = new NamedSemaphore(name);
  const before = threadCount();
  const worker = startWorker(fixture('worker-linger.js'), { workerData: { name, mode: 'unused' } });
  assert.equal(await exitWithin(worker, 5000), 0);
  assert.ok(await until(() => threadCount() <= before, 1000));
  sem.close();
});

test('process.exit() in a worker with waits pending ends it promptly with its code', async () => {
  const name = uniqueName('wlinger');
  const sem = new NamedSemaphore(name);
  const before = threadCount();
  const worker = startWorker(fixture('worker-linger.js'), { workerData: { name, mode: 'exit' } });
  assert.equal(await exitWithin(worker, 5000), 7);
  assert.ok(await until(() => threadCount() <= before, 1000), `${threadCount()} threads, ${before} before`);
  sem.post();
  await sleep(30);
  assert.equal(sem.value, 1, 'the exited worker took nothing');
  sem.close();
});

test('a worker thread waits through the same mechanism as the main thread', async () => {
  const worker = startWorker("require('node:worker_threads').parentPort.postMessage(require(process.argv[2]).NamedSemaphore.waitMechanism)", {
    eval: true,
    argv: [require.resolve('..')],
  });
  const [mechanism] = await once(worker, 'message');
  assert.equal(mechanism, NamedSemaphore.waitMechanism);
  assert.equal(await exitWithin(worker, 5000), 0);
});
