'use strict';
// Interop with programs no one here wrote the semaphore code for: a C program
// on glibc's sem_* and a Python one through ctypes, both ways round.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { NamedSemaphore } = require('..');
const { uniqueName, fixture, run, sleep, until, waiterCount, probeIoUring } = require('./helpers');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-semtool-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const tools = [
  { lang: 'C', command: path.join(dir, 'semtool'), prefix: [] },
  { lang: 'Python', command: 'python3', prefix: [fixture('semtool.py')] },
];

before(async () => {
  const cc = await run('cc', ['-Wall', '-Wextra', '-Werror', '-O2', '-pthread', '-o', tools[0].command, fixture('semtool.c')]);
  assert.equal(cc.code, 0, `cc failed:\n${cc.stderr}`);
});

/** A unique name of exactly 251 bytes (the most glibc allows), partly multi-byte. */
function longName(tag) {
  let fill = 'é'.repeat(100);
  for (;;) {
    const name = uniqueName(`${tag}-${fill}`);
    const short = 251 - Buffer.byteLength(name.slice(1));
    if (short === 0) return name;
    fill = short > 0 ? fill + 'x'.repeat(short) : fill.slice(0, short); // drops 'x's (or a whole 'é')
  }
}

/** Runs the tool; resolves the lines it printed, and fails on a non-zero exit. */
async function semtool(tool, args) {
  const result = await run(tool.command, [...tool.prefix, ...args], { timeoutMs: 20000 });
  assert.equal(result.code, 0, `${tool.lang} semtool ${args.join(' ')}: exit ${result.code}\n${result.stderr}`);
  return result.stdout.trim().split('\n');
}

for (const tool of tools) {
  test(`${tool.lang}: opens a semaphore Node created, posts to it and reads it`, async () => {
    const sem = new NamedSemaphore(uniqueName(`${tool.lang}-node`), { initialValue: 3 });
    assert.deepEqual(await semtool(tool, [sem.name, 'value', 'post', 'post', 'value', 'trywait', 'value']), [
      '3', 'ok', 'ok', '5', '1', '4',
    ]);
    assert.equal(sem.value, 4);
    sem.post(3);
    assert.equal(sem.tryWait(), true);
    // Six to take, seven tries.
    const tries = Array(7).fill('trywait');
    assert.deepEqual(await semtool(tool, [sem.name, 'value', ...tries, 'value']), ['6', ...'1111110', '0']);
    assert.equal(sem.value, 0);
    assert.equal(sem.tryWait(), false);
    sem.close();
  });

  test(`${tool.lang}: creates a semaphore that Node opens with create: false`, async () => {
    const name = longName(tool.lang);
    assert.deepEqual(await semtool(tool, ['-c', '7', name, 'value']), ['7']);
    // The name Node asks for is the file the tool made.
    assert.equal(fs.statSync(`/dev/shm/sem.${name.slice(1)}`).mode & 0o777, 0o600);
    assert.throws(() => new NamedSemaphore(name, { exclusive: true }), { code: 'EEXIST' });

    const sem = new NamedSemaphore(name, { create: false });
    assert.equal(sem.value, 7);
    assert.equal(sem.tryWait(), true);
    assert.equal(sem.waitSync({ timeout: 1000 }), true);
    assert.equal(await sem.wait({ timeout: 1000 }), true);
    assert.equal(sem.value, 4);
    sem.post(10);
    assert.deepEqual(await semtool(tool, [name, 'value', 'trywait', 'value']), ['14', '1', '13']);
    assert.equal(sem.value, 13);

    // Once Node removes the name, the tool can no longer open it.
    assert.equal(NamedSemaphore.unlink(name), true);
    const gone = await run(tool.command, [...tool.prefix, name, 'value']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /No such file or directory/);
    sem.close();
  });

  test(`${tool.lang}: a blocked wait in the tool is released by Node's post`, async () => {
    const sem = new NamedSemaphore(uniqueName(`${tool.lang}-blocked`));
    let done = false;
    const waiting = semtool(tool, [sem.name, 'wait', 'value']).finally(() => (done = true));
    await sleep(500);
    assert.equal(done, false, 'the tool did not wait');
    assert.equal(sem.value, 0);
    // One post: post(2) is two sem_post calls, and the tool could read the
    // value between them.
    sem.post();
    assert.deepEqual(await waiting, ['ok', '0']);
    assert.equal(sem.value, 0);
    sem.close();
  });

  test(`${tool.lang}: Node's pending await wait() is released by the tool's post`, async () => {
    const sem = new NamedSemaphore(uniqueName(`${tool.lang}-await`));
    let settled = false;
    const acquired = sem.wait({ timeout: 10000 }).finally(() => (settled = true));
    await sleep(200);
    assert.equal(settled, false, 'the wait ended without a post');
    assert.deepEqual(await semtool(tool, [sem.name, 'post']), ['ok']);
    assert.equal(await acquired, true);
    assert.equal(sem.value, 0);
    sem.close();
  });
}

// With io_uring, Node's async waits on a handle are one waiter in glibc's
// count, beside the tool's blocked sem_wait. A post wakes the first waiter
// queued: here Node's. If Node's wait ends right then (aborted, so it takes
// nothing), the wake must pass on to the tool, or the tool would sleep with
// the token in the semaphore. (With waiter threads, the thread takes the
// token and the abort posts it back, which wakes the tool.)
test(`C: a post whose wake-up lands on an aborted wait in Node still releases the tool's sem_wait`, async () => {
  const sem = new NamedSemaphore(uniqueName('C-passon'));
  const ac = new AbortController();
  const aborted = assert.rejects(sem.wait({ signal: ac.signal }), { name: 'AbortError' });
  assert.ok(await until(() => waiterCount(sem.name) === 1, 2000), 'Node is not counted as a waiter');
  const tool = semtool(tools[0], [sem.name, 'wait', 'value']);
  assert.ok(await until(() => waiterCount(sem.name) === 2, 2000), 'the tool is not counted as a waiter');
  sem.post();
  ac.abort(); // before the event loop sees the wake-up
  await aborted;
  assert.deepEqual(await tool, ['ok', '0']);
  assert.equal(sem.value, 0);
  // (A waiter thread leaves glibc's count at the end of its 20 ms slice.)
  assert.ok(await until(() => waiterCount(sem.name) === 0, 1000), `${waiterCount(sem.name)} waiters left`);
  sem.close();
});

test('wait() waits through io_uring where the kernel has futex waits for it (Linux 6.7+) and allows io_uring', () => {
  const [major, minor] = os.release().split('.').map(Number);
  // Asked of the kernel itself: a sysctl (io_uring_disabled) or a seccomp
  // filter (a container, phase 2 of npm test) may refuse it.
  const allowed = probeIoUring().setup === 'ok';
  const expected = (major > 6 || (major === 6 && minor >= 7)) && allowed && process.env.NAMED_SEMAPHORE_WAITER !== 'thread' ? 'io_uring' : 'thread';
  assert.equal(NamedSemaphore.waitMechanism, expected);
});
