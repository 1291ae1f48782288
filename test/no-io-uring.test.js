'use strict';
// The seccomp launcher (test/fixtures/no-io-uring.c) that phase 2 of npm test
// runs the whole suite under: it must refuse io_uring as Docker's default
// profile does, to every process below it, or phase 2 tests nothing new.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const os = require('node:os');
const path = require('node:path');
const { uniqueName, run, noIoUringLauncher, probeIoUring } = require('./helpers');

const launcher = noIoUringLauncher();
const refused = { setup: 'EPERM', enter: 'EPERM', register: 'EPERM' };
const here = probeIoUring();
// Under phase 2 (or in a container) this process is already refused io_uring:
// then nothing here can show what changes outside the launcher.
const outsideSkip = here.setup !== 'ok' && `io_uring is already refused here (${JSON.stringify(here)}): phase 2 of npm test, or a container`;
const [major, minor] = os.release().split('.').map(Number);
const futexWaits = major > 6 || (major === 6 && minor >= 7);

test('under the launcher io_uring_setup, io_uring_enter and io_uring_register get EPERM, in a child of a child too', () => {
  // sh forks python3 (the `; :` keeps sh from exec'ing it in its place).
  assert.deepEqual(probeIoUring([launcher, 'sh', '-c', '"$@"; :', 'sh']), refused);
});

test('outside the launcher the same probe reaches io_uring (the control)', { skip: outsideSkip }, () => {
  assert.deepEqual(here, { setup: 'ok', enter: 'EBADF', register: 'EBADF' });
});

// A child that reports its wait mechanism and does one timed-out and one taken
// wait; NAMED_SEMAPHORE_WAITER is removed, so only the kernel's answer decides.
async function waitChild(prefix, shared = false) {
  const name = uniqueName('seccomp');
  const script = `
    const { NamedSemaphore } = require(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      const sem = new NamedSemaphore(${JSON.stringify(name)});
      const timedOut = !(await sem.wait({ timeout: 20 }));
      setTimeout(() => sem.post(), 20);
      const took = await sem.wait({ timeout: 10000 });
      const waitersShareThreads = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'native.js'))}).binding.waitersShareThreads;
      console.log(JSON.stringify({ mechanism: NamedSemaphore.waitMechanism, timedOut, took, value: sem.value${shared ? ', waitersShareThreads' : ''} }));
      sem.close();
    })();`;
  const env = { ...process.env };
  delete env.NAMED_SEMAPHORE_WAITER;
  const argv = [...prefix, process.execPath, '-e', script];
  const r = await run(argv[0], argv.slice(1), { env, timeoutMs: 30000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('under the launcher wait() falls back to waiter threads by itself, and waits work', async () => {
  assert.deepEqual(await waitChild([launcher]), { mechanism: 'thread', timedOut: true, took: true, value: 0 });
});

test('with --no-futex-waitv too, each semaphore gets a waiter thread of its own (futex_waitv: ENOSYS), and waits work', async () => {
  const probe = await run(launcher, ['--no-futex-waitv', 'python3', '-c',
    'import ctypes, os; l = ctypes.CDLL(None, use_errno=True); r = l.syscall(449, None, 0, 0, None, 0); print(os.strerror(ctypes.get_errno()) if r < 0 else "ok")']);
  assert.equal(probe.stdout.trim(), 'Function not implemented'); // ENOSYS, as before Linux 5.16
  assert.deepEqual(await waitChild([launcher, '--no-futex-waitv'], true), {
    mechanism: 'thread', timedOut: true, took: true, value: 0, waitersShareThreads: false,
  });
});

test(
  'outside the launcher the same child waits through io_uring (the control)',
  { skip: outsideSkip || (!futexWaits && `Linux ${os.release()} has no io_uring futex waits (6.7+)`) },
  async () => {
    assert.deepEqual(await waitChild([]), { mechanism: 'io_uring', timedOut: true, took: true, value: 0 });
  },
);

test('the launcher: usage without a command (2), 127 for a command not found, else the command\'s own status', async () => {
  const usage = await run(launcher, []);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /usage: no-io-uring \[--no-futex-waitv\] COMMAND/);
  assert.equal((await run(launcher, ['--no-futex-waitv'])).code, 2);
  const missing = await run(launcher, ['nsem-no-such-command']);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /nsem-no-such-command: No such file or directory/);
  assert.equal((await run(launcher, ['sh', '-c', 'exit 7'])).code, 7);
});
