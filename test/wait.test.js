'use strict';
// Async waits: they never block the event loop or the thread pool, keep FIFO
// order, honour timeout, abort and close promptly, and never lose a token.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs/promises');
const crypto = require('node:crypto');
const { NamedSemaphore } = require('..');
const { uniqueName, sleep, until, threadCount, waiterCount, slowdown } = require('./helpers');
const { waitersShareThreads } = require('../dist/native').binding;

const ms = (start) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

test('wait resolves true at once when the value is above 0', async () => {
  const sem = new NamedSemaphore(uniqueName(), { initialValue: 2 });
  assert.equal(await sem.wait(), true);
  assert.equal(await sem.acquire({ timeout: 0 }), true);
  assert.equal(await sem.wait({ timeout: 0 }), false);
  sem.close();
});

test('a blocked wait resolves when another handle posts; value stays 0 while it waits', async () => {
  const name = uniqueName();
  const waiter = new NamedSemaphore(name);
  const poster = new NamedSemaphore(name);
  let settled = false;
  const p = waiter.wait().then((v) => ((settled = true), v));
  await sleep(50);
  assert.equal(settled, false);
  assert.equal(poster.value, 0);
  poster.post();
  assert.equal(await p, true);
  assert.equal(poster.value, 0);
  waiter.close();
  poster.close();
});

test('timeouts resolve false, on time and within 100 ms of it', async () => {
  const sem = new NamedSemaphore(uniqueName());
  const late = [];
  for (let i = 0; i < 5; i++) {
    const start = process.hrtime.bigint();
    assert.equal(await sem.wait({ timeout: 40 }), false);
    const took = ms(start);
    assert.ok(took >= 39, `took ${took} ms for a 40 ms timeout`);
    late.push(took - 40);
  }
  assert.ok(median(late) < 100, `median lateness ${median(late)} ms`);
  assert.equal(sem.value, 0);
  sem.close();
});

test('bad wait options reject with Node-style errors', async () => {
  const sem = new NamedSemaphore(uniqueName());
  await assert.rejects(sem.wait({ timeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
  await assert.rejects(sem.wait({ timeout: 'soon' }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(sem.wait({ signal: {} }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(sem.wait(7), { code: 'ERR_INVALID_ARG_TYPE' });
  sem.close();
});

test('abort rejects with signal.reason promptly; an aborted signal rejects at once', async () => {
  const sem = new NamedSemaphore(uniqueName());
  const reason = new Error('stop');
  await assert.rejects(sem.wait({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
  const ac = new AbortController();
  const p = sem.wait({ signal: ac.signal });
  let aborted;
  setTimeout(() => {
    aborted = process.hrtime.bigint();
    ac.abort(reason);
  }, 20);
  await assert.rejects(p, (e) => e === reason);
  // From abort() on (however late a loaded machine runs the timer).
  assert.ok(ms(aborted) < 100 * slowdown, `abort took ${ms(aborted)} ms`);
  await assert.rejects(sem.wait({ signal: AbortSignal.timeout(10) }), { name: 'TimeoutError' });
  sem.post();
  assert.equal(sem.value, 1, 'aborted waits took nothing');
  sem.close();
});

test('close rejects pending waits with ERR_SEMAPHORE_CLOSED and takes nothing', async () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name);
  const waits = Array.from({ length: 5 }, () => sem.wait());
  await sleep(30);
  sem.close();
  for (const w of waits) await assert.rejects(w, { code: 'ERR_SEMAPHORE_CLOSED' });
  const other = new NamedSemaphore(name);
  other.post(3);
  await sleep(60); // the stopped waiter thread must not take these
  assert.equal(other.value, 3);
  other.close();
});

test('waits on one handle are served first in, first out', async () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name);
  const poster = new NamedSemaphore(name);
  const order = [];
  const waits = [0, 1, 2, 3, 4].map((i) => sem.wait().then(() => order.push(i)));
  for (let i = 0; i < 5; i++) {
    await sleep(10);
    poster.post();
  }
  await Promise.all(waits);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  sem.close();
  poster.close();
});

// More handles waiting at once than the ring's completion queue has entries
// (512), or than waiter threads sleep on (127 each): none may be lost. (Where
// each semaphore has a waiter thread of its own, 2000 threads: skipped.)
test('2000 handles waiting at once are all served (more than the ring\'s completion queue holds)', { skip: NamedSemaphore.waitMechanism !== 'io_uring' && !waitersShareThreads && 'one waiter thread per semaphore here: 2000 threads' }, async () => {
  const name = uniqueName();
  const poster = new NamedSemaphore(name);
  const sems = Array.from({ length: 2000 }, () => new NamedSemaphore(name));
  const waits = sems.map((s) => s.wait({ timeout: 20000 }));
  await sleep(50);
  assert.equal(waiterCount(name), 2000);
  poster.post(2000);
  assert.deepEqual(await Promise.all(waits), Array(2000).fill(true));
  assert.equal(poster.value, 0);
  assert.equal(waiterCount(name), 0);
  for (const s of sems) s.close();
  poster.close();
});

test('8 pending waits do not occupy the libuv thread pool', async () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name);
  const waits = Array.from({ length: 8 }, () => new NamedSemaphore(name).wait());
  await sleep(20);
  // Were the waits parked on the 4 pool threads, these would never finish
  // before the posts below.
  const work = Promise.all([
    fs.stat(__filename),
    fs.readFile(__filename),
    new Promise((resolve, reject) => crypto.pbkdf2('pw', 'salt', 1000, 32, 'sha256', (e, k) => (e ? reject(e) : resolve(k)))),
  ]);
  const outcome = await Promise.race([work.then(() => 'done'), sleep(10000).then(() => 'stuck')]);
  assert.equal(outcome, 'done');
  sem.post(8);
  assert.deepEqual(await Promise.all(waits), Array(8).fill(true));
  sem.close();
});

test('100 pending waits on one handle cost one thread (none with io_uring), which ends when idle', async () => {
  const sem = new NamedSemaphore(uniqueName());
  const before = threadCount();
  const waits = Array.from({ length: 100 }, () => sem.wait());
  await sleep(50);
  const during = threadCount();
  assert.ok(during - before <= (NamedSemaphore.waitMechanism === 'io_uring' ? 0 : 1), `threads ${before} -> ${during}`);
  assert.ok(await until(() => waiterCount(sem.name) === 1, 2000), 'glibc counts the handle as one waiter');
  sem.post(100);
  assert.equal((await Promise.all(waits)).length, 100);
  assert.equal(sem.value, 0);
  // An idle waiter thread ends by itself (after lingering 1 s), handle open.
  assert.ok(await until(() => threadCount() <= before, 5000), `threads still ${threadCount()} > ${before}`);
  assert.equal(await sem.wait({ timeout: 10 }), false, 'a later wait starts a thread again');
  sem.close();
});

// Each race: a wait that is ended by timeout, abort or close at about the
// moment a post arrives. Whatever wins, every posted token is either received
// by the wait or still in the semaphore: none lost, none made up.
for (const ending of ['timeout', 'abort', 'close']) {
  test(`${ending} racing a post loses no token (1000 rounds)`, async () => {
    const name = uniqueName();
    const observer = new NamedSemaphore(name);
    let received = 0;
    let posted = 0;
    for (let round = 0; round < 1000; round++) {
      const sem = new NamedSemaphore(name);
      const ac = new AbortController();
      const p = sem.wait(ending === 'timeout' ? { timeout: 1 + (round % 3) } : { signal: ac.signal });
      const delay = round % 4;
      const end = () => (ending === 'abort' ? ac.abort() : ending === 'close' ? sem.close() : undefined);
      if (delay === 0) {
        observer.post();
        end();
      } else {
        setTimeout(end, delay);
        setTimeout(() => observer.post(), delay);
      }
      posted++;
      const got = await p.then(
        (v) => v,
        () => false,
      );
      if (got) received++;
      sem.close();
      await sleep(0);
    }
    // Tokens taken natively for a wait that could no longer receive them are
    // posted back by the waiter thread within one slice.
    const settled = await until(() => received + observer.value === posted, 2000);
    assert.ok(settled, `posted ${posted}, received ${received}, left ${observer.value}`);
    await sleep(100);
    assert.equal(received + observer.value, posted);
    observer.close();
  });
}

test('a pending wait keeps its semaphore alive without a reference from the caller', async () => {
  const name = uniqueName();
  const p = new NamedSemaphore(name).wait(); // the object is not kept
  if (global.gc) global.gc();
  await sleep(20);
  const poster = new NamedSemaphore(name);
  poster.post();
  assert.equal(await p, true);
  poster.close();
});
