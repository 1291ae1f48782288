'use strict';
// The synchronous API: options, names, values, errors, close and unlink.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { NamedSemaphore, SemaphoreError, SEM_VALUE_MAX } = require('..');
const { uniqueName, readableCopy, emulator } = require('./helpers');

const shmFile = (name) => `/dev/shm/sem.${name.slice(1)}`;

test('defaults: created with value 0 and mode 0o600; name normalized', () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name.slice(1));
  assert.equal(sem.name, name);
  assert.equal(sem.value, 0);
  assert.equal(fs.statSync(shmFile(name)).mode & 0o777, 0o600);
  assert.equal(sem.closed, false);
  sem.close();
  assert.equal(sem.closed, true);
});

test('initialValue, mode (number or octal string), post, tryWait and aliases', () => {
  const name = uniqueName();
  const old = process.umask(0);
  try {
    const sem = new NamedSemaphore(name, { initialValue: 3, mode: '640' });
    assert.equal(fs.statSync(shmFile(name)).mode & 0o777, 0o640);
    assert.equal(sem.value, 3);
    sem.post();
    sem.release(2);
    assert.equal(sem.value, 6);
    assert.equal(sem.tryWait(), true);
    assert.equal(sem.tryAcquire(), true);
    assert.equal(sem.value, 4);
    for (let i = 0; i < 4; i++) assert.equal(sem.tryWait(), true);
    assert.equal(sem.tryWait(), false);
    assert.equal(sem.value, 0);
    sem.close();
  } finally {
    process.umask(old);
  }
});

test('an existing semaphore keeps its value; initialValue applies only on creation', () => {
  const name = uniqueName();
  const a = new NamedSemaphore(name, { initialValue: 5 });
  const b = new NamedSemaphore(name, { initialValue: 1 });
  assert.equal(b.value, 5);
  b.post();
  assert.equal(a.value, 6);
  a.close();
  b.close();
});

test('create: false on a missing name fails with ENOENT; exclusive on an existing one with EEXIST', () => {
  const name = uniqueName();
  assert.throws(() => new NamedSemaphore(name, { create: false }), (e) => {
    assert.ok(e instanceof SemaphoreError);
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, -2);
    assert.equal(e.syscall, 'sem_open');
    assert.equal(e.path, name);
    assert.match(e.message, new RegExp(`ENOENT.*sem_open '${name}'`));
    return true;
  });
  const sem = new NamedSemaphore(name, { exclusive: true });
  assert.throws(() => new NamedSemaphore(name, { exclusive: true }), { code: 'EEXIST', syscall: 'sem_open' });
  const again = new NamedSemaphore(name, { create: false });
  again.close();
  sem.close();
  assert.throws(() => new NamedSemaphore(name, { create: false, exclusive: true }), {
    code: 'ERR_INVALID_ARG_VALUE',
  });
});

test('permission denied is EACCES (as a non-root user)', { skip: process.getuid() !== 0 && 'needs root to switch user' }, () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name, { mode: 0o600 });
  const script = `
    process.setgid(65534); process.setuid(65534);
    const { NamedSemaphore } = require(${JSON.stringify(readableCopy())});
    try { new NamedSemaphore(${JSON.stringify(name)}, { create: false }); console.log('opened'); }
    catch (e) { console.log(e.code); }`;
  const out = require('node:child_process').execFileSync(process.execPath, ['-e', script]).toString().trim();
  assert.equal(out, 'EACCES');
  sem.close();
});

// The tests above and in gauge.test.js pass wherever the checkout lives only
// if the copy is whole: nothing may be loaded from the checkout itself.
test('readableCopy(): another user loads the package from the copy alone', { skip: process.getuid() !== 0 && 'needs root to switch user' }, () => {
  const copy = readableCopy();
  const script = `
    process.setgid(65534); process.setuid(65534);
    const { NamedSemaphore } = require(${JSON.stringify(copy)});
    const sem = new NamedSemaphore(${JSON.stringify(uniqueName('copy'))}, { initialValue: 2 });
    const value = sem.value;
    sem.unlink(); sem.close();
    const addons = require('node:fs').readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith('.node')).map((l) => l.split(' ').pop());
    console.log(JSON.stringify({ value, modules: Object.keys(require.cache), addons: [...new Set(addons)] }));`;
  const out = JSON.parse(require('node:child_process').execFileSync(process.execPath, ['-e', script]).toString());
  assert.equal(out.value, 2);
  assert.equal(out.addons.length, 1, `one addon mapped: ${out.addons}`);
  // (Under test:arm64 the emulator's own preload is loaded too: not the package's.)
  const modules = out.modules.filter((f) => !(emulator && f.endsWith(path.join('test', 'arm64', 'emulated.js'))));
  for (const file of [...modules, ...out.addons]) assert.ok(file.startsWith(copy + path.sep), `${file} is outside ${copy}`);
});

test('glibc name rules', () => {
  const base = uniqueName().slice(1);
  const pad = (ch, bytes) => base + ch.repeat(Math.floor((bytes - base.length) / Buffer.byteLength(ch)));
  // Up to 251 bytes (UTF-8) after the one optional leading '/'.
  for (const name of [base, '/' + base, pad('x', 251), '/' + pad('x', 251), pad('é', 251)]) {
    const sem = new NamedSemaphore(name);
    assert.equal(sem.name, '/' + name.replace(/^\//, ''));
    assert.ok(fs.existsSync(shmFile(sem.name)));
    assert.equal(sem.unlink(), true);
    sem.close();
  }
  const bad = [
    ['', 'ERR_INVALID_ARG_VALUE'],
    ['/', 'ERR_INVALID_ARG_VALUE'],
    ['//a', 'ERR_INVALID_ARG_VALUE'],
    ['/a/b', 'ERR_INVALID_ARG_VALUE'],
    ['a\0b', 'ERR_INVALID_ARG_VALUE'],
    [pad('x', 251) + 'x', 'ERR_INVALID_ARG_VALUE'],
    [pad('é', 251) + 'é', 'ERR_INVALID_ARG_VALUE'],
    [42, 'ERR_INVALID_ARG_TYPE'],
    [undefined, 'ERR_INVALID_ARG_TYPE'],
    [null, 'ERR_INVALID_ARG_TYPE'],
    [Symbol('s'), 'ERR_INVALID_ARG_TYPE'],
  ];
  for (const [name, code] of bad) {
    assert.throws(() => new NamedSemaphore(name), { code }, `name ${String(name).slice(0, 20)}`);
    assert.throws(() => NamedSemaphore.unlink(name), { code });
  }
  assert.throws(() => new NamedSemaphore('x'.repeat(252)), /at most 251 bytes/);
});

test('bad options, counts and values throw Node-style errors', () => {
  const name = uniqueName();
  const cases = [
    [{ initialValue: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ initialValue: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ initialValue: SEM_VALUE_MAX + 1 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ initialValue: '1' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ mode: -1 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ mode: 0o10000 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ mode: '999' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ mode: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE'],
    [{ create: 'yes' }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    [{ exclusive: 1 }, TypeError, 'ERR_INVALID_ARG_TYPE'],
    ['options', TypeError, 'ERR_INVALID_ARG_TYPE'],
    [null, TypeError, 'ERR_INVALID_ARG_TYPE'],
  ];
  for (const [options, type, code] of cases) {
    assert.throws(() => new NamedSemaphore(name, options), (e) => e instanceof type && e.code === code, JSON.stringify(options));
  }
  const sem = new NamedSemaphore(name);
  for (const count of [0, -1, 1.5, NaN, Infinity, SEM_VALUE_MAX + 1]) {
    assert.throws(() => sem.post(count), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, String(count));
  }
  for (const count of ['1', null, {}, 1n]) {
    assert.throws(() => sem.post(count), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  }
  for (const timeout of [-1, NaN, -Infinity]) {
    assert.throws(() => sem.waitSync({ timeout }), { code: 'ERR_OUT_OF_RANGE' });
  }
  assert.throws(() => sem.waitSync({ timeout: '5' }), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => sem.waitSync(5), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.equal(sem.value, 0, 'nothing changed');
  sem.close();
});

test('EOVERFLOW at SEM_VALUE_MAX leaves the value unchanged', () => {
  const sem = new NamedSemaphore(uniqueName(), { initialValue: SEM_VALUE_MAX - 2 });
  assert.throws(() => sem.post(3), { code: 'EOVERFLOW', syscall: 'sem_post' });
  assert.equal(sem.value, SEM_VALUE_MAX - 2);
  sem.post(2);
  assert.equal(sem.value, SEM_VALUE_MAX);
  assert.throws(() => sem.post(), { code: 'EOVERFLOW' });
  assert.equal(sem.value, SEM_VALUE_MAX);
  sem.close();
});

test('unlink while open keeps the handle working; the name can then be recreated afresh', () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name, { initialValue: 2 });
  assert.equal(sem.unlink(), true);
  assert.equal(sem.unlink(), false);
  assert.equal(NamedSemaphore.unlink(name), false);
  assert.equal(fs.existsSync(shmFile(name)), false);
  sem.post();
  assert.equal(sem.value, 3);
  assert.throws(() => new NamedSemaphore(name, { create: false }), { code: 'ENOENT' });
  const fresh = new NamedSemaphore(name, { initialValue: 7 });
  assert.equal(fresh.value, 7);
  assert.equal(sem.value, 3, 'the old one is a different semaphore');
  fresh.close();
  sem.close();
});

test('every use after close throws ERR_SEMAPHORE_CLOSED; close is idempotent; dispose closes', async () => {
  const sem = new NamedSemaphore(uniqueName());
  sem.close();
  sem.close();
  for (const use of [() => sem.value, () => sem.post(), () => sem.tryWait(), () => sem.waitSync({ timeout: 0 })]) {
    assert.throws(use, { code: 'ERR_SEMAPHORE_CLOSED' });
  }
  await assert.rejects(sem.wait(), { code: 'ERR_SEMAPHORE_CLOSED' });
  assert.equal(sem.unlink(), true, 'unlink works by name after close');

  const name = uniqueName();
  // Node 20 has Symbol.dispose but not yet the `using` syntax.
  const d = new NamedSemaphore(name);
  d[Symbol.dispose]();
  assert.equal(d.closed, true);
});

test('two handles on one name close independently', () => {
  const name = uniqueName();
  const a = new NamedSemaphore(name);
  const b = new NamedSemaphore(name);
  a.close();
  a.close();
  for (let i = 0; i < 1000; i++) b.post();
  assert.equal(b.value, 1000);
  const c = new NamedSemaphore(name);
  b.close();
  assert.equal(c.value, 1000);
  c.close();
});

test('waitSync: takes, times out, tries once with timeout 0', () => {
  const sem = new NamedSemaphore(uniqueName(), { initialValue: 1 });
  assert.equal(sem.waitSync(), true);
  assert.equal(sem.waitSync({ timeout: 0 }), false);
  const start = process.hrtime.bigint();
  assert.equal(sem.waitSync({ timeout: 30 }), false);
  assert.ok(Number(process.hrtime.bigint() - start) / 1e6 >= 29, 'waited the timeout');
  sem.post();
  assert.equal(sem.waitSync({ timeout: Infinity }), true);
  sem.close();
});

test('on a platform other than Linux, require fails with one clear message naming it', () => {
  // process.platform is what the loader checks; pretend to be macOS.
  const script = `
    Object.defineProperty(process, 'platform', { value: 'darwin' });
    try { require(${JSON.stringify(require.resolve('..'))}); console.log('loaded'); }
    catch (e) { console.log(e.message); }`;
  const out = require('node:child_process').execFileSync(process.execPath, ['-e', script]).toString();
  assert.match(out, /^named-semaphore supports Linux \(glibc\) only; this is darwin-/);
  assert.match(out, /no sem_getvalue and no timed wait/);
});

test('waitSync keeps its deadline when signals interrupt it (EINTR is retried)', async () => {
  const name = uniqueName();
  const sem = new NamedSemaphore(name);
  // A handled signal makes sem_clockwait return EINTR even under SA_RESTART.
  const script = `
    const { NamedSemaphore } = require(${JSON.stringify(readableCopy())});
    let signals = 0;
    process.on('SIGUSR2', () => signals++);
    const sem = new NamedSemaphore(${JSON.stringify(name)}, { create: false });
    console.log('ready');
    const start = process.hrtime.bigint();
    const got = sem.waitSync({ timeout: 600 });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    // Stay a moment after reporting, so no signal meets the exit.
    setImmediate(() => console.log(JSON.stringify({ got, ms, signals })));
    setTimeout(() => {}, 500);`;
  const child = require('node:child_process').spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise((resolve) => child.stdout.once('data', resolve));
  const timer = setInterval(() => child.kill('SIGUSR2'), 20);
  child.stdout.on('data', () => out.includes('{') && clearInterval(timer));
  const [code, signal] = await require('node:events').once(child, 'exit');
  clearInterval(timer);
  assert.equal(signal, null, `the child died of ${signal}`);
  assert.equal(code, 0);
  const result = JSON.parse(out.trim().split('\n').pop());
  assert.equal(result.got, false, 'timed out, not taken and not an error');
  assert.ok(result.ms >= 599, `returned after ${result.ms} ms, before its 600 ms deadline`);
  assert.ok(result.signals > 0, 'signals arrived during the wait');
  sem.close();
});
