'use strict';
// Native x64 and emulated arm64 processes on one /dev/shm, both using the
// package installed from the tarball (so each loads its own prebuild): a post
// on one side wakes a wait on the other, both ways, and one gauge has one
// total from both sides. Run by test/arm64.sh with this (native) Node, which
// sets NAMED_SEMAPHORE_ARM64_NODE (a wrapper that runs the arm64 Node under
// qemu) and NAMED_SEMAPHORE_PACKAGE (the installed package).
const { test, describe, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const arm64Node = process.env.NAMED_SEMAPHORE_ARM64_NODE;
const pkg = process.env.NAMED_SEMAPHORE_PACKAGE;
const skip = !(arm64Node && pkg) && 'run by npm run test:arm64, which provides the emulated arm64 Node';
const { NamedSemaphore, Gauge } = skip ? {} : require(pkg);
const side = path.join(__dirname, 'side.js');
// An emulated Node takes seconds to start on a busy machine.
const LINE_TIMEOUT_MS = 120000;

let counter = 0;
const names = [];
const uniqueName = (tag) => {
  const name = `/nsem-arm64-${process.pid}-${tag}-${++counter}`;
  names.push(name);
  return name;
};
after(() => {
  for (const name of names) {
    try {
      if (fs.existsSync(`/dev/shm/sem.${name.slice(1)}~gauge`)) Gauge.unlink(name);
      else NamedSemaphore.unlink(name);
    } catch {
      // already gone
    }
  }
});

const children = new Set();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Starts side.js (under qemu unless native); lines are read with next(). */
function start(args, { native = false, env = {} } = {}) {
  const command = native ? process.execPath : arm64Node;
  const child = spawn(command, [side, ...args.map(String)], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  let buffered = '';
  const lines = [];
  const waiting = [];
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      lines.push(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      while (waiting.length && lines.length) waiting.shift()(lines.shift());
    }
  });
  const exited = new Promise((resolve) =>
    child.on('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stderr });
    }),
  );
  return {
    child,
    exited,
    next() {
      if (lines.length) return Promise.resolve(lines.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line from side.js ${args.join(' ')}\n${stderr}`)), LINE_TIMEOUT_MS);
        waiting.push((line) => {
          clearTimeout(timer);
          resolve(line);
        });
        exited.then(({ code, signal }) => reject(new Error(`side.js ${args.join(' ')} exited (${code ?? signal})\n${stderr}`)));
      });
    },
  };
}

/** Checks the "ready <arch> <addon>" line: the side loaded its own prebuild. */
async function expectReady(s, arch) {
  const [word, seenArch, addon] = (await s.next()).split(' ');
  assert.equal(word, 'ready');
  assert.equal(seenArch, arch);
  assert.equal(addon, fs.realpathSync(path.join(pkg, 'prebuilds', `linux-${arch}`, 'named-semaphore.glibc.node')));
}

/** glibc's waiter count: the high half of the semaphore's 64-bit word, the same on x64 and aarch64. */
const waiterCount = (name) => Number(fs.readFileSync(`/dev/shm/sem.${name.slice(1)}`).readBigUInt64LE(0) >> 32n);

async function until(fn, ms) {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return fn();
}

describe('x64 and arm64 processes share semaphores and gauges', { skip }, () => {
  test('this process loaded the x64 prebuild from the installed package', () => {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    assert.ok(maps.includes(fs.realpathSync(path.join(pkg, 'prebuilds/linux-x64/named-semaphore.glibc.node'))));
  });

  test('a post from x64 wakes a wait blocked in the arm64 process', async () => {
    const name = uniqueName('a-waits');
    const sem = new NamedSemaphore(name, { exclusive: true });
    const waiter = start(['wait', name]);
    await expectReady(waiter, 'arm64');
    assert.ok(await until(() => waiterCount(name) >= 1, LINE_TIMEOUT_MS), 'the arm64 wait never blocked');
    sem.post();
    assert.equal(await waiter.next(), 'woken true');
    assert.equal((await waiter.exited).code, 0);
    assert.equal(sem.value, 0, 'the arm64 side took the token');
    sem.close();
  });

  for (const mechanism of ['default', 'thread']) {
    test(`a post from arm64 wakes a wait blocked in an x64 process (${mechanism} waits)`, async () => {
      const name = uniqueName('x-waits');
      const sem = new NamedSemaphore(name, { exclusive: true });
      const env = mechanism === 'thread' ? { NAMED_SEMAPHORE_WAITER: 'thread' } : {};
      const waiter = start(['wait', name], { native: true, env });
      await expectReady(waiter, 'x64');
      assert.ok(await until(() => waiterCount(name) >= 1, LINE_TIMEOUT_MS), 'the x64 wait never blocked');
      const poster = start(['post', name]);
      await expectReady(poster, 'arm64');
      assert.equal(await poster.next(), 'posted');
      assert.equal(await waiter.next(), 'woken true');
      assert.equal((await waiter.exited).code, 0);
      assert.equal((await poster.exited).code, 0);
      assert.equal(sem.value, 0, 'the x64 side took the token');
      sem.close();
    });
  }

  test("one gauge, one total from both sides; neither side reaps the other's live share", async () => {
    const name = uniqueName('gauge');
    const holder = start(['hold', name, 3]);
    await expectReady(holder, 'arm64');
    assert.equal(await holder.next(), 'held');
    const g = new Gauge(name); // may reap: must keep the arm64 share
    try {
      g.release(2);
      assert.equal(Gauge.read(name), 5);
      assert.equal(g.value, 5);
      assert.equal(g.reap(), 0, 'x64 took the live arm64 share for a dead one');
      // The arm64 share's name carries the start time the kernel gives that
      // process (qemu fakes /proc/<own pid>/stat; see lib/shares.ts).
      const pid = holder.child.pid;
      // sem.NAME~<pid namespace>.<pid>.<start time>.<nonce>
      const pidns = String(fs.statSync(`/proc/${pid}/ns/pid`).ino);
      const share = fs.readdirSync('/dev/shm').find((f) => f.startsWith(`sem.${name.slice(1)}~${pidns}.${pid}.`));
      assert.ok(share, 'no share file of the arm64 process');
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
      assert.equal(share.split('.')[3], stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
      holder.child.stdin.write('\n');
      assert.equal(await holder.next(), 'read 5 5 0', 'Gauge.read, .value and reap() from the arm64 side');
      holder.child.stdin.end(); // a normal end gives its share back
      assert.equal((await holder.exited).code, 0);
      assert.equal(Gauge.read(name), 2);
      assert.equal(g.value, 2);
      assert.equal(g.reap(), 0);
    } finally {
      g.close();
    }
  });
});
