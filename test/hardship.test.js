'use strict';
// Waits and handles where servers run: the waiter-thread path that containers
// get (io_uring refused), thousands of idle waits, stopped processes, a
// worker terminated inside a callback, close() from inside a callback,
// process.exit() mid-wait, running out of file descriptors. Each case runs in
// child processes, on both wait mechanisms where this kernel has both.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { NamedSemaphore } = require('..');
const { uniqueName, fixture, run, sleep, until, waiterCount, slowdown } = require('./helpers');

const root = path.join(__dirname, '..');
// Where futex_waitv is refused, each semaphore with waits has a thread of its own.
const { waitersShareThreads } = require('../dist/native').binding;
const mechanisms = NamedSemaphore.waitMechanism === 'io_uring' ? ['io_uring', 'thread'] : ['thread'];
const envFor = (mechanism) => ({ ...process.env, NAMED_SEMAPHORE_WAITER: mechanism === 'thread' ? 'thread' : '' });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-hardship-'));
const semtool = path.join(dir, 'semtool');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
before(async () => {
  const cc = await run('cc', ['-O2', '-pthread', '-o', semtool, fixture('semtool.c')]);
  assert.equal(cc.code, 0, `cc failed:\n${cc.stderr}`);
});

/** Runs `source` as a CommonJS script in a child Node. */
function node(source, { args = [], timeoutMs = 60000, env } = {}) {
  return run(process.execPath, [...args, '-e', source], { timeoutMs, env });
}

function assertClean(r, what) {
  assert.equal(r.signal, null, `${what}: died of ${r.signal}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /FATAL ERROR|Segmentation|Bus error|Error:/, `${what}\n${r.stderr}`);
}

/** A long-running child whose stdout lines arrive through next(pattern). */
function start(command, args, env) {
  const child = spawn(command, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  child.lines = () => out;
  child.errors = () => err;
  child.next = async (pattern, timeoutMs = 10000) => {
    assert.ok(await until(() => pattern.test(out), timeoutMs * slowdown), `no ${pattern} from ${command}: ${out}\n${err}`);
  };
  return child;
}

/** Whether every thread of the process is stopped (a thread just woken from a futex wait stops on its way out). */
const allStopped = (pid) =>
  fs.readdirSync(`/proc/${pid}/task`).every((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').replace(/^.*\) /, '')[0] === 'T');

// 1000: every semaphore has a thread sleeping on it; 2100: more than the
// threads have room for (16 x 127), so one thread also polls the rest.
for (const [count, cpuLimit] of [[1000, 0.05], [2100, 0.1]]) {
test(`${count} idle waits on ${count} semaphores through waiter threads: at most 16 threads, almost no CPU, prompt timeout, abort and close`, { timeout: 120000 * slowdown }, async () => {
  const prefix = uniqueName('idle');
  const r = await node(
    `const { NamedSemaphore } = require(${JSON.stringify(root)});
     const threads = () => require('node:fs').readdirSync('/proc/self/task').length;
     const sems = [];
     const before = threads();
     for (let i = 0; i < ${count}; i++) sems.push(new NamedSemaphore(${JSON.stringify(prefix)} + '-' + i));
     const results = sems.map((s) => s.wait());
     (async () => {
       await new Promise((r) => setTimeout(r, 300));
       const during = threads() - before;
       const cpu0 = process.cpuUsage();
       const t0 = process.hrtime.bigint();
       await new Promise((r) => setTimeout(r, 2000));
       const cpu = process.cpuUsage(cpu0);
       const wall = Number(process.hrtime.bigint() - t0) / 1000;
       const share = (cpu.user + cpu.system) / wall;
       // Timeout, abort and close, each on a semaphore that the others wait beside.
       const extra = new NamedSemaphore(${JSON.stringify(prefix)} + '-x');
       let t = Date.now();
       const timedOut = await extra.wait({ timeout: 50 });
       const timeoutMs = Date.now() - t;
       const ac = new AbortController();
       const aborted = extra.wait({ signal: ac.signal }).catch((e) => e.name);
       await new Promise((r) => setTimeout(r, 20));
       t = Date.now(); ac.abort(); const abortResult = await aborted; const abortMs = Date.now() - t;
       const closing = extra.wait().catch((e) => e.code);
       await new Promise((r) => setTimeout(r, 20));
       t = Date.now(); extra.close(); const closeResult = await closing; const closeMs = Date.now() - t;
       extra.unlink();
       // Every one is still served: those slept on and those polled.
       for (const s of sems) s.post();
       const all = await Promise.all(results);
       console.log(JSON.stringify({ during, share, timedOut, timeoutMs, abortResult, abortMs, closeResult, closeMs,
         served: all.filter((x) => x === true).length, values: sems.reduce((n, s) => n + s.value, 0) }));
       for (const s of sems) { s.unlink(); s.close(); }
     })();`,
    { env: envFor('thread'), timeoutMs: 100000 },
  );
  assertClean(r, 'idle waits');
  const m = JSON.parse(r.stdout);
  console.log(`# ${count} idle waits on waiter threads: ${m.during} threads, ${(m.share * 100).toFixed(2)} % of a CPU; timeout after ${m.timeoutMs} ms, abort ${m.abortMs} ms, close ${m.closeMs} ms`);
  assert.ok(m.during <= (waitersShareThreads ? 16 : count), `${m.during} waiter threads for ${count} semaphores`);
  // (Under AddressSanitizer the polling thread's rounds cost more.)
  assert.ok(m.share < cpuLimit * slowdown, `idle waits use ${(m.share * 100).toFixed(1)} % of a CPU`);
  assert.equal(m.timedOut, false);
  assert.ok(m.timeoutMs >= 49, `timed out early: ${m.timeoutMs} ms`);
  assert.equal(m.abortResult, 'AbortError');
  assert.equal(m.closeResult, 'ERR_SEMAPHORE_CLOSED');
  // Kicked, not found at the next slice: far less than a second, even loaded.
  assert.ok(m.abortMs < 1000 && m.closeMs < 1000, `abort took ${m.abortMs} ms, close ${m.closeMs} ms`);
  assert.equal(m.served, count);
  assert.equal(m.values, 0);
});
}

test('close() unmaps at once: 20,000 open/unlink/close cycles leave no mapping behind, with no GC', async () => {
  const name = uniqueName('unmap');
  const r = await node(
    `const { NamedSemaphore } = require(${JSON.stringify(root)});
     const fs = require('node:fs');
     const mapped = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.includes('/dev/shm/sem.')).length;
     const before = mapped();
     for (let i = 0; i < 20000; i++) {
       const s = new NamedSemaphore(${JSON.stringify(name)});
       if (i % 2) s.unlink();
       s.close();
     }
     const sem = new NamedSemaphore(${JSON.stringify(name)});
     sem.close();
     let threw;
     try { sem.value; } catch (e) { threw = e.code; }
     console.log(before, mapped(), threw);
     NamedSemaphore.unlink(${JSON.stringify(name)});`,
  );
  assertClean(r, 'unmap');
  const [before, afterCycles, threw] = r.stdout.trim().split(' ');
  assert.equal(Number(afterCycles), Number(before), `mappings: ${before} before, ${afterCycles} after 20,000 cycles`);
  assert.equal(threw, 'ERR_SEMAPHORE_CLOSED');
});

for (const mechanism of mechanisms) {
  const env = envFor(mechanism);

  test(`close() from inside settle(), five waits served in one batch: no token lost (${mechanism} waits)`, async () => {
    const name = uniqueName('close-in-settle');
    const r = await node(
      `const { NamedSemaphore } = require(${JSON.stringify(root)});
       const sem = new NamedSemaphore(${JSON.stringify(name)});
       const signal = new AbortController().signal;
       // Our settle() removes the abort listener of each wait it settles: the
       // first one closes the handle, with four more tokens already taken.
       signal.removeEventListener = () => sem.close();
       const waits = [];
       for (let i = 0; i < 5; i++) waits.push(sem.wait({ signal }).then((v) => v, (e) => e.code));
       setTimeout(() => require('node:child_process').execFileSync(process.execPath, ['-e',
         ${JSON.stringify(`new (require(${JSON.stringify(root)}).NamedSemaphore)(${JSON.stringify(name)}).post(5)`)}]), 50);
       Promise.all(waits).then((results) => {
         const check = new NamedSemaphore(${JSON.stringify(name)});
         console.log(results.join(' '), check.value);
         check.close();
       });`,
      { env },
    );
    assertClean(r, 'close in settle');
    assert.equal(r.stdout, 'true ERR_SEMAPHORE_CLOSED ERR_SEMAPHORE_CLOSED ERR_SEMAPHORE_CLOSED ERR_SEMAPHORE_CLOSED 4\n');
  });

  test(`a worker terminated while settle() runs loses no token (${mechanism} waits)`, async () => {
    const name = uniqueName('term-in-settle');
    const sem = new NamedSemaphore(name);
    try {
      for (let round = 0; round < 5; round++) {
        const r = await node(
          `const { Worker } = require('node:worker_threads');
           const flag = new Int32Array(new SharedArrayBuffer(4));
           const w = new Worker(\`
             const { NamedSemaphore } = require(${JSON.stringify(root)});
             const { workerData: flag } = require('node:worker_threads');
             const sem = new NamedSemaphore(${JSON.stringify(name)});
             const signal = new AbortController().signal;
             // Inside settle(): spin until terminated.
             signal.removeEventListener = () => { Atomics.store(flag, 0, 1); for (;;); };
             sem.wait({ signal }).then(() => Atomics.store(flag, 0, 2));
             sem.wait({ signal });
             require('node:worker_threads').parentPort.postMessage('waiting');
           \`, { eval: true, workerData: flag });
           w.once('message', () => {
             new (require(${JSON.stringify(root)}).NamedSemaphore)(${JSON.stringify(name)}).post(2);
             const spin = setInterval(() => {
               if (Atomics.load(flag, 0) === 0) return;
               clearInterval(spin);
               w.terminate().then((code) => console.log('terminated', code, Atomics.load(flag, 0)));
             }, 1);
           });`,
          { env },
        );
        assertClean(r, `round ${round}`);
        assert.equal(r.stdout, 'terminated 1 1\n', `round ${round}`);
        // Neither promise reached user code: both tokens went back.
        assert.equal(sem.value, 2, `round ${round}`);
        assert.ok(sem.tryWait() && sem.tryWait());
      }
    } finally {
      sem.close();
    }
  });
}

test('process.exit() with a thread wait pending leaves glibc counting no waiter, 40 times', async () => {
  const name = uniqueName('exit-waiters');
  const sem = new NamedSemaphore(name);
  try {
    for (let i = 0; i < 40; i++) {
      const r = await node(
        `const { NamedSemaphore } = require(${JSON.stringify(root)});
         const sem = new NamedSemaphore(${JSON.stringify(name)});
         sem.wait(); sem.wait({ timeout: 5000 });
         setTimeout(() => process.exit(3), ${i % 8});`,
        { env: envFor('thread') },
      );
      assert.equal(r.code, 3, r.stderr);
      assert.equal(waiterCount(name), 0, `trial ${i}: glibc counts ${waiterCount(name)} waiters`);
    }
    assert.equal(sem.value, 0);
  } finally {
    sem.close();
  }
});

test('running out of file descriptors at the first wait() does not decide the wait mechanism for good', async () => {
  const name = uniqueName('emfile');
  const probe = await node(`console.log(require(${JSON.stringify(root)}).NamedSemaphore.waitMechanism)`, { env: envFor('io_uring') });
  const natural = probe.stdout.trim();
  // ulimit: a limit low enough to reach quickly; the script fills it, waits,
  // frees it, and waits again.
  const script = `const { NamedSemaphore } = require(${JSON.stringify(root)});
    const fs = require('node:fs');
    const sem = new NamedSemaphore(${JSON.stringify(name)});
    const fds = [];
    try { for (;;) fds.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; }
    sem.wait({ timeout: 20 }).then(async (first) => {
      const during = NamedSemaphore.waitMechanism;
      for (const fd of fds) fs.closeSync(fd);
      await new Promise((r) => setTimeout(r, 1100)); // io_uring is tried again a second later
      const second = await sem.wait({ timeout: 20 });
      const { Worker } = require('node:worker_threads');
      const w = new Worker("require('node:worker_threads').parentPort.postMessage(require(${JSON.stringify(root).replace(/"/g, '\\"')}).NamedSemaphore.waitMechanism)", { eval: true });
      w.once('message', (inWorker) => console.log(first, during, second, NamedSemaphore.waitMechanism, inWorker));
    });`;
  const r = await run('sh', ['-c', `ulimit -n 200 && exec "${process.execPath}" -e "$0"`, script], { env: envFor('io_uring') });
  assertClean(r, 'emfile');
  assert.equal(r.stdout, `false thread false ${natural} ${natural}\n`);
});

for (const mechanism of mechanisms) {
  test(`a stopped process with a wait pending and a C program in sem_wait: what a post does (${mechanism} waits)`, { timeout: 60000 * slowdown }, async () => {
    const name = uniqueName('stop');
    const sem = new NamedSemaphore(name);
    const waiter = start(process.execPath, ['-e', `const { NamedSemaphore } = require(${JSON.stringify(root)});
      const sem = new NamedSemaphore(${JSON.stringify(name)});
      sem.wait().then((v) => console.log('took', v));
      console.log('waiting');`], envFor(mechanism));
    let c;
    try {
      await waiter.next(/waiting/);
      assert.ok(await until(() => waiterCount(name) === 1, 5000), 'the Node waiter is not counted');
      c = start(semtool, [name, 'wait']);
      assert.ok(await until(() => waiterCount(name) === 2, 5000), 'the C waiter is not counted');
      await sleep(50); // the C program is asleep in its futex wait, after the Node waiter
      process.kill(waiter.pid, 'SIGSTOP');
      assert.ok(await until(() => allStopped(waiter.pid), 5000));
      sem.post();
      if (mechanism === 'thread') {
        // The stop took the waiter thread out of its futex wait: the post's
        // wake-up goes to the C program.
        await c.next(/ok/, 5000);
        assert.equal(sem.value, 0);
        process.kill(waiter.pid, 'SIGCONT');
        sem.post();
        await waiter.next(/took true/);
      } else {
        // The ring's futex wait stays queued while its process is stopped and
        // takes the wake-up: the C program sleeps with the value at 1 until
        // the process continues (README, "A stopped process").
        await sleep(300);
        assert.equal(c.lines(), '');
        assert.equal(sem.value, 1);
        const t = Date.now();
        process.kill(waiter.pid, 'SIGCONT');
        await waiter.next(/took true/);
        console.log(`# after SIGCONT, the stopped process took the token in ${Date.now() - t} ms`);
        assert.equal(sem.value, 0);
        sem.post();
        await c.next(/ok/, 5000);
      }
      assert.ok(await until(() => waiterCount(name) === 0, 5000), `${waiterCount(name)} waiters left`);
    } finally {
      try {
        process.kill(waiter.pid, 'SIGCONT');
      } catch {}
      waiter.kill('SIGKILL');
      c?.kill('SIGKILL');
      sem.close();
    }
  });
}

for (const mechanism of mechanisms) {
  test(`worker threads that alone loaded the addon, terminated with waits pending, 30 per process: no crash, every token back (${mechanism} waits)`, { timeout: 120000 * slowdown }, async () => {
    const name = uniqueName('alone');
    const sem = new NamedSemaphore(name);
    try {
      for (let p = 0; p < 3; p++) {
        // The main thread never loads the addon: each worker's exit unloads it.
        const r = await node(
          `const { Worker } = require('node:worker_threads');
           (async () => {
             for (let i = 0; i < 30; i++) {
               const w = new Worker(\`
                 const { NamedSemaphore } = require(${JSON.stringify(root)});
                 const sem = new NamedSemaphore(${JSON.stringify(name)});
                 for (let k = 0; k < 3; k++) sem.wait();
                 sem.wait({ timeout: 60000 });
                 require('node:worker_threads').parentPort.postMessage('waiting');
               \`, { eval: true });
               await new Promise((r) => w.once('message', r));
               await new Promise((r) => setTimeout(r, i % 4));
               await w.terminate();
             }
             console.log('done');
           })();`,
          { env: envFor(mechanism) },
        );
        assertClean(r, `process ${p}`);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'done\n');
        assert.equal(waiterCount(name), 0, `process ${p}: glibc counts ${waiterCount(name)} waiters`);
      }
      assert.equal(sem.value, 0);
    } finally {
      sem.close();
    }
  });
}
