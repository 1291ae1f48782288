'use strict';
// Several real processes on one semaphore: counts stay exact, and a wait in
// one process is released by a post in another, not before.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { NamedSemaphore } = require('..');
const fs = require('node:fs');
const { binding } = require('../dist/native');
const { uniqueName, runNode, sleep, until } = require('./helpers');

/** Starts a Node fixture; `done` turns true when it has exited. */
function start(fixture, args) {
  const child = { done: false };
  child.result = runNode(fixture, args, { timeoutMs: 30000 }).finally(() => (child.done = true));
  return child;
}

function assertExitedCleanly(result) {
  assert.equal(result.code, 0, `exit ${result.code} ${result.signal ?? ''}\n${result.stderr}`);
}

test('four processes, 100,000 post/wait pairs each: the final value is exact', async () => {
  const name = uniqueName('pairs');
  const iterations = 100000;
  const sem = new NamedSemaphore(name, { initialValue: 1000 });
  // Each child takes one extra every 1000 rounds: 100 each, 400 in all.
  const modes = ['sync', 'try', 'async', 'mix'];
  const results = await Promise.all(modes.map((mode) => runNode('pairs.js', [name, iterations, mode])));
  for (const result of results) {
    assertExitedCleanly(result);
    assert.equal(result.stdout.trim(), `done ${iterations} 100`);
  }
  assert.equal(sem.value, 1000 - 400);
  sem.close();
});

test('a token passed around a ring of four processes by await wait() and post()', async () => {
  const hops = 25000;
  const names = [0, 1, 2, 3].map((i) => uniqueName(`ring${i}`));
  // Two tokens, in the first and third semaphore; every other wait blocks
  // until the previous process in the ring posts.
  const initial = [1, 0, 1, 0];
  const sems = names.map((name, i) => new NamedSemaphore(name, { initialValue: initial[i] }));
  const results = await Promise.all(names.map((name, i) => runNode('relay.js', [name, names[(i + 1) % 4], hops])));
  for (const result of results) {
    assertExitedCleanly(result);
    assert.equal(result.stdout.trim(), `relayed ${hops}`);
  }
  // Each semaphore got `hops` posts and gave `hops` takes.
  assert.deepEqual(
    sems.map((s) => s.value),
    initial,
  );
  for (const sem of sems) sem.close();
});

for (const poster of ['this process', 'another process']) {
  test(`a blocked await wait() in a child is released by a post from ${poster}`, async () => {
    const name = uniqueName('block');
    const sem = new NamedSemaphore(name);
    const ready = new NamedSemaphore(uniqueName('ready'));
    const child = start('wait-once.js', [name, ready.name, 'async']);
    assert.equal(await ready.wait({ timeout: 10000 }), true, 'the child never got ready');

    await sleep(500);
    assert.equal(child.done, false, 'the wait ended without a post');
    assert.equal(sem.value, 0);

    const postedAt = Date.now();
    if (poster === 'this process') sem.post();
    else assertExitedCleanly(await runNode('post.js', [name]));
    const result = await child.result;
    assertExitedCleanly(result);
    const { acquired, waitedMs, acquiredAt, ticks } = JSON.parse(result.stdout);
    assert.equal(acquired, true);
    assert.ok(waitedMs >= 450, `waited only ${waitedMs} ms`);
    assert.ok(acquiredAt >= postedAt, 'acquired before the post');
    assert.ok(acquiredAt - postedAt < 2000, `acquired ${acquiredAt - postedAt} ms after the post`);
    // The event loop kept running while the wait was pending.
    assert.ok(ticks >= 10, `only ${ticks} timer ticks in ${waitedMs} ms`);
    assert.equal(sem.value, 0);
    sem.close();
    ready.close();
  });
}

test('the value is 0 while waiters in other processes are blocked, and each post frees exactly one', async () => {
  const name = uniqueName('zero');
  const sem = new NamedSemaphore(name);
  const ready = new NamedSemaphore(uniqueName('ready'));
  const children = ['async', 'async', 'sync'].map((mode) => start('wait-once.js', [name, ready.name, mode]));
  for (let i = 0; i < children.length; i++) {
    assert.equal(await ready.wait({ timeout: 10000 }), true, 'a child never got ready');
  }
  const finished = () => children.filter((c) => c.done).length;

  await sleep(200);
  // sem.value reads the low half of glibc's 64-bit counter word from
  // JavaScript (src/semaphore.h, ValueWord); the high half counts the
  // waiters, and must not leak into the value.
  const raw = binding.open(name, false, false, 0, 0);
  assert.ok(raw.word instanceof ArrayBuffer, 'no value word on this glibc: sem.value is a call');
  const counterWord = () => fs.readFileSync(`/dev/shm/sem.${name.slice(1)}`).readBigUInt64LE(0);
  // (An async waiter's thread leaves the count for an instant between slices.)
  assert.ok(await until(() => counterWord() >> 32n === 3n, 5000), 'glibc did not count 3 waiters in the high half');
  for (let i = 0; i < 10; i++) {
    assert.equal(sem.value, 0);
    assert.equal(binding.value(raw.id), 0); // sem_getvalue
    await sleep(20);
  }
  assert.equal(finished(), 0);

  sem.post(2);
  assert.ok(await until(() => finished() === 2, 10000), `${finished()} of 3 waiters finished after post(2)`);
  await sleep(300);
  assert.equal(finished(), 2, 'a third waiter got through on two posts');
  assert.equal(sem.value, 0);
  sem.post(5); // the one still waiting takes one of them
  const results = await Promise.all(children.map((c) => c.result));
  for (const result of results) {
    assertExitedCleanly(result);
    assert.equal(JSON.parse(result.stdout).acquired, true);
  }
  assert.equal(counterWord(), 4n); // no waiter left
  assert.equal(sem.value, 4);
  assert.equal(binding.value(raw.id), 4);
  binding.close(raw.id);
  sem.close();
  ready.close();
});
