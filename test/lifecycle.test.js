'use strict';
// Process lifetimes, in child processes: process.exit() with waits pending,
// what keeps a process alive and what does not, garbage-collected handles, and
// several handles on one name closed independently.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const { NamedSemaphore } = require('..');
const { uniqueName, run, runNode, fixture, sleep, until, slowdown } = require('./helpers');

for (const when of ['sync', 'timer', 'settle']) {
  test(`process.exit() with five waits pending exits promptly with its code (${when})`, async () => {
    const name = uniqueName('exit');
    const sem = new NamedSemaphore(name);
    const started = Date.now();
    const r = await runNode('lifecycle-exit.js', [name, 42, when], { timeoutMs: 5000 });
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 42, r.stderr);
    assert.ok(Date.now() - started < 5000 * slowdown);
    // Its waits took nothing (in 'settle' one took the token it posted).
    assert.equal(sem.value, 0);
    sem.post();
    assert.equal(sem.value, 1);
    sem.close();
  });
}

test(
  'process.exit() gives back the tokens its waiter threads took but never settled in JavaScript',

  async () => {
    const name = uniqueName('exit');
    const sem = new NamedSemaphore(name);
    try {
      const r = await runNode('lifecycle-exit.js', [name, 42, 'busy'], { timeoutMs: 5000 });
      assert.equal(r.code, 42, r.stderr);
      assert.ok(await until(() => sem.value === 3, 500), `value ${sem.value} after exit, expected 3`);
    } finally {
      sem.close();
    }
  },
);

test('a pending wait keeps the process alive until another process posts; then it exits by itself', async () => {
  const name = uniqueName('alive');
  const sem = new NamedSemaphore(name);
  const child = spawn(process.execPath, [fixture('lifecycle-wait.js'), name, 'wait'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    assert.ok(await until(() => stdout.includes('waiting'), 5000 * slowdown), `no 'waiting': ${stderr}`);
    await sleep(500);
    assert.equal(child.exitCode, null, 'the child exited with its wait pending');
    assert.equal(child.signalCode, null);
    assert.equal(stdout, 'waiting\n');
    sem.post();
    const end = await Promise.race([exited, sleep(5000 * slowdown).then(() => 'still running')]);
    assert.deepEqual(end, { code: 0, signal: null }, stderr);
    assert.equal(stdout, 'waiting\nacquired\n');
    assert.equal(sem.value, 0);
  } finally {
    child.kill('SIGKILL');
    sem.close();
  }
});

for (const mode of ['unused', 'settled']) {
  test(`a process whose semaphore is open but has no wait pending exits by itself (${mode})`, async () => {
    const name = uniqueName('idle');
    const sem = new NamedSemaphore(name);
    const started = Date.now();
    const r = await runNode('lifecycle-wait.js', [name, mode], { timeoutMs: 5000 });
    assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
    assert.ok(Date.now() - started < 5000 * slowdown);
    if (mode === 'settled') assert.equal(r.stdout.trim(), '[true,false,"AbortError",false]');
    assert.equal(sem.value, 0);
    sem.close();
  });
}

test('garbage-collected handles are closed (their mapping goes, their threads end) but the name stays', async () => {
  const name = uniqueName('gc');
  const sem = new NamedSemaphore(name);
  sem.close();
  const r = await run(process.execPath, ['--expose-gc', fixture('lifecycle-gc.js'), name, 10000], { timeoutMs: 60000 });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  // glibc maps a name once per process, however often it is opened.
  assert.equal(out.before.mappings, 1, r.stdout);
  assert.equal(out.before.timedOut, 100, r.stdout);
  if (NamedSemaphore.waitMechanism === 'thread') assert.ok(out.before.threads >= 1, `the timed waits ran on waiter threads: ${r.stdout}`);
  assert.deepEqual(out.after, { mappings: 0, threads: 0 }, `after gc: ${r.stdout}`);
  // A value word outlives its collected handle, mapping and all, and goes with its last view.
  assert.deepEqual(out.word, { collected: true, closed: true, mappingsWhileViewed: 1, value: 1, mappingsAfter: 0 }, r.stdout);
  assert.equal(out.exists, true, 'a finalizer never unlinks');
  assert.ok(fs.existsSync(`/dev/shm/sem.${name.slice(1)}`));
});

test('two handles on one name close independently; close() with waits pending rejects them all and loses no token', async () => {
  const name = uniqueName('two');
  const sem = new NamedSemaphore(name);
  const r = await runNode('lifecycle-two.js', [name], { timeoutMs: 60000 });
  assert.deepEqual({ code: r.code, signal: r.signal }, { code: 0, signal: null }, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines[0], { check: 'two handles', closeFirst: 'a', ok: 5000, seen: 1, value: 0 });
  assert.deepEqual(lines[1], { check: 'two handles', closeFirst: 'b', ok: 5000, seen: 1, value: 0 });
  const closed = Array(5).fill('ERR_SEMAPHORE_CLOSED');
  assert.deepEqual(lines[2], { check: 'close, nothing taken', codes: closed, value: 0 });
  // Waiter threads take the three tokens while JavaScript is busy; a ring's
  // waits take them only when the event loop runs, which close() forestalls.
  const taken = NamedSemaphore.waitMechanism === 'thread' ? 3 : 0;
  assert.deepEqual(lines[3], { check: 'close, three taken', taken, codes: closed, value: 3 });
  assert.equal(sem.value, 0);
  sem.close();
});

test('call slots detached by transfer() in a worker outlive it: the memory is never freed under the buffer', async () => {
  // ArrayBuffer.prototype.transfer needs a V8 flag on Node 20.
  const flags = typeof ArrayBuffer.prototype.transfer === 'function' ? [] : ['--harmony-rab-gsab-transfer'];
  const r = await run(process.execPath, [...flags, '--expose-gc', fixture('call-slots-transfer.js')]);
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out, { code: 0, length: 16, after: [1.5, 2.5], junk: 10000 });
});
