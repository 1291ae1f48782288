'use strict';
// Gauge: a count that many processes raise and lower, exact after crashes.
// Everything cross-process here runs in real child processes (fixtures in
// test/fixtures/gauge-*.js); SIGKILL is the crash.
const test = require('node:test');
const { after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { newShareName, selfIdentity } = require('../dist/shares');
const { binding } = require('../dist/native');
const { Gauge, NamedSemaphore, SEM_VALUE_MAX } = require('..');
const { PIDNS, uniqueName, leftovers, fixture, runNode, sleep, until, readableCopy, slowdown, emulator, emulated } = require('./helpers');

// ---- helpers ----------------------------------------------------------------

/** Share files of gauge `name` in /dev/shm, parsed. */
function shareFiles(name) {
  const prefix = `sem.${name.slice(1)}~`;
  return fs
    .readdirSync('/dev/shm')
    .filter((f) => f.startsWith(prefix) && /^\d+\.\d+\.\d+\.[0-9a-f]{8}$/.test(f.slice(prefix.length)))
    .map((f) => {
      const [, pid, start] = f.slice(prefix.length).split('.');
      return { file: f, pid: Number(pid), start };
    });
}

/** Share files of gauge `name` owned by `pid`. */
const sharesOf = (name, pid) => shareFiles(name).filter((s) => s.pid === pid);

/** The state field of /proc/<pid>/stat, or null if there is no such process. */
function procState(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return null;
  }
}

const randInt = (lo, hi) => lo + Math.floor(Math.random() * (hi - lo + 1));
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

// Every child started with start() and not yet exited.
const children = new Set();

/** Kills every child still running and waits until they are gone. */
async function killAll() {
  const left = [...children];
  for (const c of left) c.child.kill('SIGKILL');
  await Promise.all(left.map((c) => c.exited));
}
after(killAll);

/**
 * Starts a fixture as a long-lived child that talks in lines on stdout.
 * Returns { child, pid, line(), send(text), end(), kill(), exited }.
 */
function start(name, args) {
  const child = spawn(process.execPath, [fixture(name), ...args.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  const waiting = [];
  let buffer = '';
  let stderr = '';
  let ended = false;
  child.stdin.on('error', () => {}); // EPIPE after a kill
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buffer += d;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, i));
      buffer = buffer.slice(i + 1);
    }
    while (waiting.length > 0 && lines.length > 0) waiting.shift().resolve(lines.shift());
  });
  child.stderr.on('data', (d) => (stderr += d));
  const handle = { child, pid: child.pid };
  // 'exit' comes after waitpid(): the process is gone, not a zombie.
  handle.exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(handle);
      resolve({ code, signal, stderr });
    }),
  );
  child.stdout.on('end', () => {
    ended = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`${name} ${args.join(' ')} ended without a line\n${stderr}`));
  });
  /** The next line on stdout. */
  handle.line = (timeoutMs = 20000 * slowdown) => {
    if (lines.length > 0) return Promise.resolve(lines.shift());
    if (ended) return Promise.reject(new Error(`${name} ${args.join(' ')} ended without a line\n${stderr}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line from ${name} in ${timeoutMs} ms\n${stderr}`)), timeoutMs);
      waiting.push({
        resolve: (l) => (clearTimeout(timer), resolve(l)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  };
  handle.send = (text) => child.stdin.write(text);
  handle.end = () => child.stdin.end();
  handle.kill = () => {
    child.kill('SIGKILL');
    return handle.exited;
  };
  children.add(handle);
  return handle;
}

/** Expects a line "<word> <numbers...>" and returns the numbers. */
async function expectLine(handle, word) {
  const line = await handle.line();
  const [w, ...rest] = line.split(' ');
  assert.equal(w, word, `expected "${word} ..." from pid ${handle.pid}, got ${JSON.stringify(line)}`);
  return rest.map(Number);
}

/** Removes the gauge and everything of it; asserts nothing of it is left. */
function removeGauge(name) {
  Gauge.unlink(name);
  assert.deepEqual(
    fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`sem.${name.slice(1)}~`) || f === `sem.${name.slice(1)}`),
    [],
  );
}

// ---- 1. exact under contention ------------------------------------------------

test('exact under contention: 4 processes x 100,000 release/acquire pairs, 2 readers always see 0..4, final 0', async (t) => {
  const name = uniqueName('g-contend');
  const ready = uniqueName('g-ready');
  const stop = uniqueName('g-stop');
  const readySem = new NamedSemaphore(ready);
  const stopSem = new NamedSemaphore(stop);
  const owner = new Gauge(name); // makes the gauge; holds 0
  try {
    const readers = ['read', 'value'].map((how) => runNode('gauge-reader.js', [name, how, ready, stop, 4]));
    for (let i = 0; i < 2; i++) assert.equal(await readySem.wait({ timeout: 20000 * slowdown }), true, 'readers started');
    const workers = await Promise.all([1, 2, 3, 4].map(() => runNode('gauge-pairs.js', [name, 100000])));
    stopSem.post(2);
    for (const w of workers) {
      assert.equal(w.code, 0, w.stderr);
      assert.equal(w.stdout.trim(), 'done 100000 0');
    }
    for (const r of await Promise.all(readers)) {
      assert.equal(r.code, 0, r.stderr);
      const stats = JSON.parse(r.stdout);
      assert.deepEqual(stats.bad, [], `reads outside 0..4: ${r.stdout}`);
      assert.ok(stats.min >= 0 && stats.max <= 4, r.stdout);
      assert.ok(stats.reads > 10, `too few reads to mean anything: ${r.stdout}`);
      t.diagnostic(`reader: ${r.stdout.trim()}`);
    }
    assert.equal(Gauge.read(name), 0);
    assert.equal(owner.value, 0);
    assert.deepEqual(shareFiles(name).map((s) => s.pid), [process.pid], 'only the owner share is left');
  } finally {
    owner.close();
    readySem.close();
    stopSem.close();
    NamedSemaphore.unlink(ready);
    NamedSemaphore.unlink(stop);
    removeGauge(name);
  }
});

// ---- 2. exact after crashes ----------------------------------------------------------

const crashSkip = emulated('255 emulated Node starts, each taking seconds of CPU');
test('exact after crashes: 255 SIGKILLs at random moments, then reap() leaves exactly the live locals', { skip: crashSkip }, async (t) => {
  const name = uniqueName('g-crash');
  const base = new Gauge(name);
  base.release(1000); // a non-zero base: a clamp at 0 could not hide an error
  const ROUNDS = 3;
  const KILLS_PER_ROUND = 85;
  const SLOTS = 4;
  let killedHolding = 0;
  try {
    let reapedByParent = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Survivors: known holds; they churn (slowly, to leave the CPU to the
      // others) through all the kills, while every new child's constructor
      // reaps the dead around them.
      const survivors = [1, 2, 3, 4].map(() => start('gauge-hold.js', [name, randInt(1, 5), 'churn-slow', 2]));
      const held = [];
      for (const s of survivors) held.push((await expectLine(s, 'held'))[1]);

      let kills = 0;
      const slot = async () => {
        while (kills < KILLS_PER_ROUND) {
          kills++;
          const c = start('gauge-hold.js', [name, randInt(1, 5), 'churn', 2]);
          if (Math.random() < 0.25) {
            // Anywhere: during start-up, in the constructor, in release(), churning.
            await sleep(randInt(0, 150));
          } else {
            await expectLine(c, 'held');
            await sleep(randInt(0, 20));
            killedHolding++;
          }
          const { signal } = await c.kill();
          assert.equal(signal, 'SIGKILL');
          // Every other share is >= 0, so no read may fall below the base.
          assert.ok(base.value >= base.local, 'the base share lost tokens');
        }
      };
      await Promise.all(Array.from({ length: SLOTS }, slot));

      // Stop the survivors' churn, so that their locals are fixed.
      const locals = [];
      for (const s of survivors) {
        s.send('stop\n');
        locals.push((await expectLine(s, 'stopped'))[0]);
      }
      assert.deepEqual(locals, held, 'a stopped churner is back to what it held');

      const expected = base.local + sum(locals);
      const before = Gauge.read(name);
      assert.ok(before >= expected, `before reap ${before} < live ${expected}: a live share lost tokens`);
      const removed = base.reap(); // the dead that no later constructor reaped
      reapedByParent += removed;
      t.diagnostic(`round ${round}: ${kills} kills, reap() removed ${removed}`);
      const afterReap = Gauge.read(name);
      assert.equal(afterReap, expected, `round ${round}: after reap the total is the live locals`);
      assert.equal(base.value, expected);
      assert.equal(removed, before - afterReap, 'reap() returns what left the total');
      assert.deepEqual(
        shareFiles(name).map((s) => s.pid).sort(),
        [process.pid, ...survivors.flatMap((s) => [s.pid, s.pid])].sort(),
        'only live shares are left',
      );

      // Normal exits give their shares back without a reap.
      for (const s of survivors) s.end();
      for (const s of survivors) assert.equal((await s.exited).code, 0);
      assert.equal(Gauge.read(name), base.local);
      assert.equal(base.value, base.local);
      assert.equal(shareFiles(name).length, 1);
    }
    assert.ok(killedHolding >= 120, `only ${killedHolding} kills hit a child holding its share`);
    assert.ok(reapedByParent > 0, 'the last kills of some round left shares for reap() to remove');
  } finally {
    await killAll(); // on failure: before the gauge goes, so no child makes a share after
    base.close();
    removeGauge(name);
  }
});

// ---- 3. PID reuse, zombies -------------------------------------------------------------

test('pid reuse: a share whose pid lives under another start time is dead; reap removes exactly it', async () => {
  const name = uniqueName('g-reuse');
  const g = new Gauge(name);
  const other = new Gauge(name);
  let child;
  try {
    g.release(2);
    child = start('gauge-hold.js', [name, 3, 'idle']);
    await expectLine(child, 'held');
    const fakeName = `${name}~${PIDNS}.${process.pid}.1.deadbeef`;
    assert.equal(binding.createWhole(fakeName, 0o600, 7, -1), 0); // as a Gauge makes a share
    assert.equal(Gauge.read(name), 12, 'read counts the fake share');
    other.close(); // a change of the share set: g's cached sum lists the shares again
    assert.equal(g.value, 12, 'value counts the fake share until reap');
    assert.equal(g.reap(), 7);
    assert.equal(g.value, 5);
    assert.equal(Gauge.read(name), 5);
    assert.equal(fs.existsSync(`/dev/shm/sem.${fakeName.slice(1)}`), false, 'the fake share is gone');
    assert.equal(sharesOf(name, process.pid).length, 1, 'the live share of this process stays');
    assert.equal(sharesOf(name, child.pid).length, 1, "the live child's share stays");
    assert.equal(g.reap(), 0, 'nothing more to reap');
    assert.equal(g.local, 2);
  } finally {
    if (child) await child.kill();
    g.close();
    other.close();
    removeGauge(name);
  }
});

test('a zombie (killed, not yet waited for) counts as dead', async () => {
  const name = uniqueName('g-zombie');
  const g = new Gauge(name);
  g.release(1);
  // sh (dash) starts the holder in the background and blocks in `read`: it
  // does not wait for the holder until `wait`, so once killed the holder
  // stays a zombie until this test closes sh's stdin.
  const shell = spawn('sh', ['-c', `"${process.execPath}" "${fixture('gauge-hold.js')}" ${name} 4 idle & read x; wait`], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  shell.stdin.on('error', () => {});
  const shellExited = new Promise((r) => shell.on('exit', r));
  let pid;
  try {
    const line = await new Promise((resolve, reject) => {
      let out = '';
      shell.stdout.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve(out.split('\n')[0]);
      });
      setTimeout(() => reject(new Error('no line from the holder')), 20000);
    });
    const [word, p, held] = line.split(' ');
    assert.equal(word, 'held');
    assert.equal(Number(held), 4);
    pid = Number(p);
    assert.equal(Gauge.read(name), 5);
    process.kill(pid, 'SIGKILL');
    assert.equal(await until(() => procState(pid) === 'Z', 5000), true, 'the holder is a zombie');
    assert.equal(Gauge.read(name), 5, 'its share still counts until reaped');
    assert.equal(g.reap(), 4);
    assert.equal(Gauge.read(name), 1);
    assert.equal(sharesOf(name, pid).length, 0);
  } finally {
    if (pid && procState(pid) !== null && procState(pid) !== 'Z') process.kill(pid, 'SIGKILL');
    shell.stdin.end(); // sh waits for the holder (reaps the zombie) and exits
    const timer = setTimeout(() => shell.kill('SIGKILL'), 5000);
    await shellExited;
    clearTimeout(timer);
    g.close();
    removeGauge(name);
  }
});

// ---- 4. normal exits give the share back -------------------------------------------------

for (const how of [
  'end',
  'exit',
  'throw',
  'rejection',
  'worker-end',
  'worker-exit',
  'worker-terminate-idle',
  'worker-terminate-busy',
  'worker-at-process-exit',
]) {
  test(`a normal end gives the share back by itself: ${how}`, async () => {
    const name = uniqueName('g-exit');
    const base = new Gauge(name);
    base.release(10);
    try {
      const r = await runNode('gauge-exit.js', [name, how], { timeoutMs: 20000 });
      const lines = r.stdout.trim().split('\n');
      const [word, pid, during] = lines[0].split(' ');
      assert.equal(word, 'held', r.stdout + r.stderr);
      assert.equal(Number(during), 13, 'the child held 3');
      if (how === 'throw' || how === 'rejection') {
        assert.equal(r.code, 1);
        assert.match(r.stderr, /boom/);
      } else {
        assert.equal(r.code, 0, r.stderr);
      }
      if (how.startsWith('worker') && how !== 'worker-at-process-exit') {
        // Checked inside the child after its worker ended, before it exits itself.
        const [w, read, value, files] = lines[1].split(' ');
        assert.equal(w, 'after');
        assert.equal(Number(read), 10, 'Gauge.read() after the worker ended');
        assert.equal(Number(value), 10, "another Gauge's .value after the worker ended");
        assert.deepEqual(JSON.parse(files), [], 'no share file of the worker is left');
      }
      assert.equal(Gauge.read(name), 10);
      assert.equal(base.value, 10);
      assert.deepEqual(sharesOf(name, Number(pid)), []);
      assert.equal(base.reap(), 0, 'nothing was left to reap');
    } finally {
      base.close();
      removeGauge(name);
    }
  });
}

test('SIGKILL leaves the share behind; reap() removes it', async () => {
  const name = uniqueName('g-kill');
  const base = new Gauge(name);
  base.release(10);
  try {
    const c = start('gauge-hold.js', [name, 3, 'idle']);
    await expectLine(c, 'held');
    assert.equal(Gauge.read(name), 13);
    await c.kill();
    assert.equal(Gauge.read(name), 13, 'a crash leaves its count');
    assert.equal(sharesOf(name, c.pid).length, 1, 'and its share file');
    assert.equal(base.reap(), 3);
    assert.equal(Gauge.read(name), 10);
    assert.equal(base.value, 10);
    assert.deepEqual(sharesOf(name, c.pid), []);
  } finally {
    base.close();
    removeGauge(name);
  }
});

test('releaseAndRead() adds 1 and returns the total over every process, also right after the shares change', async () => {
  const name = uniqueName('g-rar');
  const g = new Gauge(name);
  try {
    assert.equal(g.releaseAndRead(), 1);
    const c = start('gauge-hold.js', [name, 3, 'idle']); // a new share: the set must be listed again
    await expectLine(c, 'held');
    assert.equal(g.releaseAndRead(), 5);
    await c.kill();
    assert.equal(g.releaseAndRead(), 6, 'a crash leaves its count until reaped');
    assert.equal(g.reap(), 3);
    assert.equal(g.releaseAndRead(), 4);
    assert.equal(g.local, 4);
    g.acquire(4);
    assert.equal(g.value, 0);
  } finally {
    g.close();
    removeGauge(name);
  }
  assert.throws(() => g.releaseAndRead(), { code: 'ERR_SEMAPHORE_CLOSED' });
  assert.equal(g.local, 0);
});

test('releaseAndRead() reads past an entry named like a share that is none (a directory): no throw, exact total', () => {
  const name = uniqueName('g-rarfail');
  const g = new Gauge(name);
  // Named as a share of this live process (so no reap removes it), then a
  // second Gauge changes the set, so the next read lists the shares again.
  const blocker = path.join('/dev/shm', `sem.${newShareName(name, selfIdentity()).slice(1)}`);
  fs.mkdirSync(blocker);
  const other = new Gauge(name);
  try {
    assert.equal(g.releaseAndRead(), 1);
    assert.equal(g.local, 1);
    assert.equal(g.value, 1);
    assert.equal(Gauge.read(name), 1);
  } finally {
    fs.rmSync(blocker, { recursive: true, force: true });
    other.close();
    g.close();
    removeGauge(name);
  }
});

test('reap() from 5 processes at once never removes a live share; the amounts sum to what was dead', async () => {
  const name = uniqueName('g-reapers');
  // One go semaphore per reaper, so that a fast one cannot take two turns.
  const goNames = [1, 2, 3, 4].map(() => uniqueName('g-go'));
  const gos = goNames.map((n) => new NamedSemaphore(n));
  const base = new Gauge(name);
  base.release(100);
  const ROUNDS = emulator ? 1 : 4; // each round starts 4 victims: seconds each under qemu
  const DEAD_PER_ROUND = 50;
  const VICTIMS_PER_ROUND = 4;
  const holds = [1, 2, 3, 4];
  const reapers = holds.map((h, i) => start('gauge-reaper.js', [name, h, goNames[i], ROUNDS]));
  try {
    const reaperPids = [];
    for (const r of reapers) reaperPids.push((await expectLine(r, 'ready'))[0]);
    const live = base.local + sum(holds);
    assert.equal(Gauge.read(name), live);
    let nonce = 0;
    for (let round = 0; round < ROUNDS; round++) {
      // Dead shares: children killed while holding, and fake shares of a
      // living pid with a wrong start time and of pids that do not exist.
      const victims = Array.from({ length: VICTIMS_PER_ROUND }, () => start('gauge-hold.js', [name, randInt(1, 9), 'idle']));
      let dead = 0;
      for (const v of victims) dead += (await expectLine(v, 'held'))[1];
      await Promise.all(victims.map((v) => v.kill()));
      for (let i = 0; i < DEAD_PER_ROUND - VICTIMS_PER_ROUND; i++) {
        const pid = i % 2 === 0 ? process.pid : 4000000 + i; // above pid_max: no such process
        const value = randInt(1, 20);
        // Made as a Gauge makes its shares (NamedSemaphore refuses share names).
        const fake = `${name}~${PIDNS}.${pid}.${1 + round}.${(++nonce).toString(16).padStart(8, '0')}`;
        assert.equal(binding.createWhole(fake, 0o600, value, -1), 0);
        dead += value;
      }
      assert.equal(shareFiles(name).length, 1 + holds.length + DEAD_PER_ROUND);
      assert.equal(Gauge.read(name), live + dead);

      for (const go of gos) go.post(); // the 4 children reap at once...
      const mine = base.reap(); // ...and so does this process
      const theirs = [];
      for (const r of reapers) theirs.push((await expectLine(r, 'reaped'))[0]);
      assert.equal(mine + sum(theirs), dead, `round ${round}: reaped ${mine} + ${theirs.join(' + ')}, dead ${dead}`);
      assert.equal(Gauge.read(name), live, 'no live share lost a token');
      assert.equal(base.value, live);
      assert.equal(base.local, 100);
      assert.deepEqual(
        shareFiles(name).map((s) => s.pid).sort(),
        [process.pid, ...reaperPids].sort(),
        'exactly the live shares are left',
      );
    }
    for (const r of reapers) r.end();
    for (const r of reapers) assert.equal((await r.exited).code, 0);
    assert.equal(Gauge.read(name), 100);
  } finally {
    await killAll();
    base.close();
    for (const go of gos) go.close();
    for (const n of goNames) NamedSemaphore.unlink(n);
    removeGauge(name);
  }
});

// ---- 6. readers that never opened the gauge, other users ----------------------------------

const NOBODY = 65534;
// nobody loads the package from a copy it can read (the checkout may be in a
// folder only root can enter).
const asNobody = () => ({ env: { ...process.env, NSEM_PACKAGE: readableCopy() } });

test('Gauge.read() in a process that never opened the gauge; another user gets EACCES under 0o600', async () => {
  const name = uniqueName('g-reader');
  const g = new Gauge(name); // default mode 0o600
  let holder;
  try {
    g.release(5);
    holder = start('gauge-hold.js', [name, 2, 'idle']);
    await expectLine(holder, 'held');
    const r = await runNode('gauge-user.js', [name, 0]); // root, never opened it
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { uid: 0, read: 7 });
    const nobody = await runNode('gauge-user.js', [name, NOBODY], asNobody());
    assert.equal(nobody.code, 0, nobody.stderr);
    const out = JSON.parse(nobody.stdout);
    assert.equal(out.uid, NOBODY);
    assert.equal(out.error, 'EACCES', nobody.stdout);
    assert.equal(out.read, undefined);
    const missing = await runNode('gauge-user.js', [uniqueName('g-missing'), 0]);
    assert.equal(JSON.parse(missing.stdout).error, 'ENOENT');
  } finally {
    if (holder) await holder.kill();
    g.close();
    removeGauge(name);
  }
});

// glibc's sem_open always opens read-write, so every share must carry the
// gauge's exact mode (not the umask's) for another user to read the sum.
test(
  "another user reads (and joins) a gauge whose mode allows it (0o666)",
  async () => {
    const name = uniqueName('g-shared');
    const g = new Gauge(name, { mode: 0o666 });
    try {
      g.release(5);
      for (const s of shareFiles(name)) {
        assert.equal(fs.statSync(`/dev/shm/${s.file}`).mode & 0o777, 0o666, `${s.file} has the gauge's mode`);
      }
      const nobody = await runNode('gauge-user.js', [name, NOBODY, 4], asNobody());
      assert.equal(nobody.code, 0, nobody.stderr);
      assert.deepEqual(JSON.parse(nobody.stdout), { uid: NOBODY, read: 5, value: 9, readWhileHeld: 9 });
      assert.equal(Gauge.read(name), 5, "nobody's share went back when it closed");
    } finally {
      g.close();
      removeGauge(name);
    }
  },
);

// ---- 7. bad input and the small promises ----------------------------------------------------

/** Runs fn and returns the error's code (or 'no error'). */
function codeOf(fn) {
  try {
    fn();
  } catch (e) {
    return e.code;
  }
  return 'no error';
}

test('bad names: same errors as NamedSemaphore; the limit leaves room for share names and says so', () => {
  const badNames = [undefined, null, 42, {}, Symbol('x'), '', '/', 'a/b', '/a/b', 'nul\0byte'];
  for (const bad of badNames) {
    const expected = codeOf(() => new NamedSemaphore(bad));
    assert.match(expected, /^ERR_INVALID_ARG_(TYPE|VALUE)$/, `NamedSemaphore(${String(bad)})`);
    assert.equal(codeOf(() => new Gauge(bad)), expected, `new Gauge(${String(bad)})`);
    assert.equal(codeOf(() => Gauge.read(bad)), expected, `Gauge.read(${String(bad)})`);
    assert.equal(codeOf(() => Gauge.unlink(bad)), expected, `Gauge.unlink(${String(bad)})`);
  }
  // 251 bytes less the room a share name needs: '~' pid '.' starttime '.' nonce.
  const tag = uniqueName('g-long').slice(1);
  const max = 251 - 49; // ~ pidns(10) . pid(7) . start time(20) . nonce(8)
  const tooLong = tag + 'x'.repeat(max + 1 - tag.length);
  assert.throws(() => new Gauge(tooLong), (e) => {
    assert.equal(e.code, 'ERR_INVALID_ARG_VALUE');
    assert.match(e.message, new RegExp(`at most ${max} bytes`));
    assert.match(e.message, /reserved for its share names/);
    return true;
  });
  assert.equal(codeOf(() => Gauge.read(tooLong)), 'ERR_INVALID_ARG_VALUE');
  // Bytes, not characters: 'é' is 2 bytes.
  const multibyte = tag + 'é'.repeat(Math.ceil((max + 1 - tag.length) / 2));
  assert.equal(codeOf(() => new Gauge(multibyte)), 'ERR_INVALID_ARG_VALUE');
  // A name just at the limit works, shares and all.
  const longest = '/' + tag + 'x'.repeat(max - tag.length);
  const g = new Gauge(longest.slice(1)); // the leading '/' is optional
  try {
    assert.equal(g.name, longest);
    g.release(4);
    assert.equal(g.value, 4);
    assert.equal(Gauge.read(longest), 4);
    assert.equal(shareFiles(longest).length, 1);
  } finally {
    g.close();
    removeGauge(longest);
  }
  assert.equal(leftovers().filter((f) => f.includes('g-long')).length, 0);
});

test('bad counts and modes: same errors as NamedSemaphore, nothing changes, nothing is created', () => {
  const name = uniqueName('g-args');
  const g = new Gauge(name);
  const sem = new NamedSemaphore(uniqueName('g-args-sem'));
  try {
    g.release(2);
    const badCounts = [0, -1, 1.5, NaN, Infinity, SEM_VALUE_MAX + 1, 2 ** 53, '1', null, 1n, {}, true];
    for (const bad of badCounts) {
      const expected = codeOf(() => sem.post(bad));
      assert.match(expected, /^ERR_(INVALID_ARG_TYPE|OUT_OF_RANGE)$/, `post(${String(bad)})`);
      assert.equal(codeOf(() => g.release(bad)), expected, `release(${String(bad)})`);
      assert.equal(codeOf(() => g.acquire(bad)), expected, `acquire(${String(bad)})`);
    }
    assert.equal(codeOf(() => g.release(0)), 'ERR_OUT_OF_RANGE');
    assert.equal(codeOf(() => g.release('1')), 'ERR_INVALID_ARG_TYPE');
    assert.equal(g.local, 2);
    assert.equal(g.value, 2);
    assert.equal(sem.value, 0);

    const badModes = ['abc', '0o777', '8', -1, 0o10000, 1.5, NaN, true, {}];
    for (const mode of badModes) {
      const other = uniqueName('g-mode');
      const expected = codeOf(() => new NamedSemaphore(uniqueName('g-mode-sem'), { mode }));
      assert.match(expected, /^ERR_(INVALID_ARG_TYPE|OUT_OF_RANGE)$/, `mode ${String(mode)}`);
      assert.equal(codeOf(() => new Gauge(other, { mode })), expected, `Gauge mode ${String(mode)}`);
      assert.equal(fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`sem.${other.slice(1)}`)).length, 0);
    }
    for (const options of [null, 5, 'x']) {
      assert.equal(codeOf(() => new Gauge(uniqueName('g-opt'), options)), codeOf(() => new NamedSemaphore(uniqueName('g-opt'), options)));
      assert.equal(codeOf(() => new Gauge(uniqueName('g-opt'), options)), 'ERR_INVALID_ARG_TYPE');
    }
    // Good modes: a number or an octal string; the gauge semaphore gets it exactly.
    const modeName = uniqueName('g-mode-ok');
    const m = new Gauge(modeName, { mode: '640' });
    try {
      assert.equal(fs.statSync(`/dev/shm/sem.${modeName.slice(1)}~gauge`).mode & 0o777, 0o640);
    } finally {
      m.close();
      removeGauge(modeName);
    }
  } finally {
    g.close();
    sem.close();
    sem.unlink();
    removeGauge(name);
  }
});

test('acquire underflow changes nothing, even when other objects hold enough', () => {
  const name = uniqueName('g-under');
  const g = new Gauge(name);
  const h = new Gauge(name);
  try {
    h.release(10);
    g.release(2);
    assert.throws(() => g.acquire(3), (e) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.code, 'ERR_GAUGE_UNDERFLOW');
      assert.match(e.message, /holds 2/);
      return true;
    });
    assert.equal(g.local, 2);
    assert.equal(g.value, 12);
    g.acquire(2);
    assert.equal(g.local, 0);
    assert.equal(codeOf(() => g.acquire()), 'ERR_GAUGE_UNDERFLOW');
    assert.equal(g.value, 10);
    g.release(); // default 1
    assert.equal(g.local, 1);
    g.acquire(); // default 1
    assert.equal(g.local, 0);
  } finally {
    g.close();
    h.close();
    removeGauge(name);
  }
});

test('close gives the share back, is idempotent, and any use afterwards throws ERR_SEMAPHORE_CLOSED', async () => {
  const name = uniqueName('g-close');
  const g = new Gauge(name);
  const h = new Gauge(name);
  try {
    g.release(4);
    h.release(1);
    assert.equal(Gauge.read(name), 5);
    const share = sharesOf(name, process.pid).map((s) => s.file);
    assert.equal(share.length, 2);
    g.close();
    assert.equal(g.closed, true);
    assert.equal(g.local, 0);
    assert.equal(Gauge.read(name), 1);
    assert.equal(h.value, 1);
    assert.equal(sharesOf(name, process.pid).length, 1, 'its share file is gone');
    g.close();
    g[Symbol.dispose]();
    assert.equal(Gauge.read(name), 1);
    for (const use of [() => g.release(), () => g.acquire(), () => g.value, () => g.reap()]) {
      assert.equal(codeOf(use), 'ERR_SEMAPHORE_CLOSED');
    }
    await assert.rejects(g.track(() => 1), { code: 'ERR_SEMAPHORE_CLOSED' });
    assert.equal(Gauge.read(name), 1);
    const d = new Gauge(name);
    d.release(2);
    assert.equal(Gauge.read(name), 3);
    d[Symbol.dispose]();
    assert.equal(d.closed, true);
    assert.equal(Gauge.read(name), 1, '[Symbol.dispose]() gives the share back');
    h.close();
    assert.equal(Gauge.read(name), 0, 'the gauge outlives its objects');
    assert.equal(Gauge.unlink(name), true);
    assert.equal(Gauge.unlink(name), false);
    assert.throws(() => Gauge.read(name), { code: 'ENOENT' });
  } finally {
    g.close();
    h.close();
    removeGauge(name);
  }
});

test('track() returns what fn returns and acquires back however fn ends (sync and async)', async () => {
  const name = uniqueName('g-track');
  const g = new Gauge(name);
  try {
    g.release(1);
    await assert.rejects(g.track(5), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.equal(g.local, 1, 'a bad fn changes nothing');
    assert.equal(await g.track(() => g.value), 2, 'one more while fn runs');
    assert.equal(g.local, 1);
    assert.equal(
      await g.track(async () => {
        await sleep(5);
        return `${g.local} ${Gauge.read(name)}`;
      }),
      '2 2',
    );
    assert.equal(g.value, 1);
    const boom = new Error('boom');
    await assert.rejects(
      g.track(() => {
        throw boom;
      }),
      (e) => e === boom,
    );
    assert.equal(g.local, 1);
    await assert.rejects(
      g.track(async () => {
        await sleep(1);
        throw boom;
      }),
      (e) => e === boom,
    );
    assert.equal(g.local, 1);
    assert.equal(g.value, 1);
    // Concurrent tracks stack up and all come back.
    const seen = await Promise.all([1, 2, 3].map((i) => g.track(async () => (await sleep(5 * i), g.value))));
    assert.ok(seen.every((v) => v >= 2 && v <= 4), String(seen));
    assert.equal(seen[0], 4);
    assert.equal(g.value, 1);
    // A thenable works; a plain value works.
    assert.equal(await g.track(() => ({ then: (res) => res('thenable') })), 'thenable');
    assert.equal(await g.track(() => 7), 7);
    // Not a function: track() rejects (a plain TypeError from calling it) and changes nothing.
    await assert.rejects(g.track(5), TypeError);
    assert.equal(g.local, 1);
    assert.equal(g.value, 1);
    // fn closes the gauge: nothing to acquire back, no error.
    assert.equal(await g.track(() => (g.close(), 'closed')), 'closed');
    assert.equal(Gauge.read(name), 0);
  } finally {
    g.close();
    removeGauge(name);
  }
});

test('nothing of these tests is left in /dev/shm', () => {
  assert.deepEqual(leftovers(), []);
});
