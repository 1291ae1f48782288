'use strict';
// The gauge at memory speed (docs/how-it-works.md, "The gauge at memory
// speed"): where glibc's layout is confirmed, a Gauge's owner stores its
// count into its share's word and readers sum the words they mapped, with no
// call into the addon. These tests hold each promise that rests on:
//   - the hot paths really make no call (counted at the addon's exports);
//   - an optimized reader loop sees another process's plain stores (the JIT
//     guard: the JavaScript memory model does not cover such memory);
//   - only a share's owner writes it: the public API refuses share names,
//     and a write by anyone else is noticed and healed;
//   - the layout check covers the waiter half: a sem_wait that does not
//     count its waiter there (glibc before 2.21) turns the fast paths off.
// Every process here is a real child.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { Gauge, NamedSemaphore } = require('..');
const { binding } = require('../dist/native');
const { uniqueName, run, slowdown, emulated, until } = require('./helpers');

const root = path.join(__dirname, '..');

/**
 * A child running `script` (with `lib` the package) that talks in lines:
 * next() resolves its next stdout line, send() writes one to its stdin.
 */
function child(script, { nodeArgs = [], env, loadFirst = true } = {}) {
  // loadFirst false: the script loads the package itself (after hooking the loader).
  const prelude = `${loadFirst ? `const lib = require(${JSON.stringify(root)});` : ''}
    const rl = require('readline').createInterface({ input: process.stdin });
    const lines = []; let wake = null;
    rl.on('line', (l) => { lines.push(l); if (wake) { wake(); wake = null; } });
    const nextInput = async () => { while (lines.length === 0) await new Promise((r) => (wake = r)); return lines.shift(); };
  `;
  const proc = spawn(process.execPath, [...nodeArgs, '-e', prelude + script], { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
  let out = '';
  let err = '';
  const waiting = [];
  const queued = [];
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (err += d));
  proc.stdout.on('data', (d) => {
    out += d;
    let i;
    while ((i = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, i);
      out = out.slice(i + 1);
      if (waiting.length > 0) waiting.shift().resolve(line);
      else queued.push(line);
    }
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`child exited (${code ?? signal}) before a line\n${err}`));
  });
  return {
    proc,
    exited,
    stderr: () => err,
    send: (line) => proc.stdin.write(line + '\n'),
    next(timeoutMs = 30000 * slowdown) {
      if (queued.length > 0) return Promise.resolve(queued.shift());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line from the child in ${timeoutMs} ms\n${err}`)), timeoutMs);
        waiting.push({ resolve: (l) => (clearTimeout(timer), resolve(l)), reject: (e) => (clearTimeout(timer), reject(e)) });
      });
    },
  };
}

const sharesOf = (name) =>
  fs
    .readdirSync('/dev/shm')
    .filter((f) => f.startsWith(`sem.${name.slice(1)}~`) && !f.endsWith('~gauge'))
    .map((f) => '/' + f.slice(4));

test('this host passes the layout check: shares and sums come with words to store to and sum', () => {
  const name = uniqueName('gm-layout');
  const g = new Gauge(name);
  try {
    const sem = binding.open(name + '-plain', true, false, 0o600, 0);
    assert.equal(typeof sem, 'object');
    assert.ok(sem.word instanceof ArrayBuffer, 'a value word where glibc 2.21+ lays the semaphore out');
    binding.close(sem.id);
    NamedSemaphore.unlink(name + '-plain');
    assert.ok(binding.sumSlotBytes >= 4096 && (binding.sumSlotBytes & (binding.sumSlotBytes - 1)) === 0, 'a slot is a page');
  } finally {
    g.close();
    Gauge.unlink(name);
  }
});

test('release(), acquire(), value and releaseAndRead() make no call into the addon while the share set stays', async () => {
  const name = uniqueName('gm-nocall');
  // Every function the addon exports is wrapped with a counter before the
  // package copies them (lib/native.ts), as node-gyp-build loads the .node file.
  const c = child(
    `
    const Module = require('module');
    const load = Module._extensions['.node'];
    let calls = 0;
    Module._extensions['.node'] = function (module, filename) {
      load(module, filename);
      for (const [key, fn] of Object.entries(module.exports)) {
        if (typeof fn === 'function') module.exports[key] = function (...args) { calls++; return fn.apply(this, args); };
      }
    };
    const { Gauge } = require(${JSON.stringify(root)});
    const g = new Gauge(${JSON.stringify(name)});
    const other = new Gauge(${JSON.stringify(name)});
    other.release(2);
    g.value; // lists the shares once
    const before = calls;
    let sum = 0;
    for (let i = 0; i < 100000; i++) {
      g.release(); sum += g.value; g.acquire();
      sum += g.releaseAndRead(); g.acquire();
      g.release(3); g.acquire(3);
    }
    const steady = calls - before;
    const values = [g.value, g.local];
    other.close(); // the share set changes
    const mid = calls;
    const after = g.releaseAndRead();
    const relist = calls - mid;
    console.log(JSON.stringify({ steady, relist, sum, values, after }));
    g.close();
  `,
    { loadFirst: false },
  );
  try {
    const r = JSON.parse(await c.next());
    assert.equal(r.steady, 0, 'no native call in 700,000 steady-state operations');
    assert.ok(r.relist > 0, 'the counter sees calls: listing the changed shares again makes some');
    assert.equal(r.sum, 100000 * 3 + 100000 * 3, 'each read saw 2 (other) + 1 (this release)');
    assert.deepEqual(r.values, [2, 0]);
    assert.equal(r.after, 1, 'after the other share went: this one alone');
  } finally {
    c.proc.kill('SIGKILL');
    await c.exited;
    Gauge.unlink(name);
  }
});

test('JIT guard: an optimized reader loop sees another process store to its share, each time, within a bound', async () => {
  const name = uniqueName('gm-jit');
  const writer = new Gauge(name);
  // The reader's loop has no call in it once inlined: were V8 ever to keep a
  // typed array's element in a register across iterations (the memory
  // model allows it: no other agent may write this memory in JavaScript's
  // view), it would spin forever here and this test would fail.
  const reader = child(
    `
    const g = new lib.Gauge(${JSON.stringify(name)});
    function spin(gauge, target, limit) {
      for (let i = 0; i < limit; i++) if (gauge.value === target) return i;
      return -1;
    }
    %PrepareFunctionForOptimization(spin);
    // Both ways out of the loop warmed up (the value is 0 now), so that
    // seeing the store does not leave the optimized code for want of feedback.
    spin(g, -1, 1000); spin(g, 0, 1000); spin(g, -1, 1000); spin(g, 0, 1000);
    %OptimizeFunctionOnNextCall(spin);
    spin(g, -1, 1000);
    (async () => {
      for (let round = 1; round <= 3; round++) {
        const before = %GetOptimizationStatus(spin);
        console.log('spinning ' + round + ' ' + before);
        const t0 = process.hrtime.bigint();
        const i = spin(g, round, 2 ** 30 - 1); // the largest Smi, as the warm-up's limits: no deopt on it
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        console.log('seen ' + round + ' ' + i + ' ' + %GetOptimizationStatus(spin) + ' ' + ms.toFixed(1));
        await nextInput();
      }
      g.close();
    })();
  `,
    { nodeArgs: ['--allow-natives-syntax'] },
  );
  const TURBOFANNED = 1 << 6; // V8's OptimizationStatus::kTurboFanned (Node 20: V8 11.3)
  try {
    for (let round = 1; round <= 3; round++) {
      const [word, n, before] = (await reader.next()).split(' ');
      assert.deepEqual([word, Number(n)], ['spinning', round]);
      assert.ok(Number(before) & TURBOFANNED, `spin() is optimized by TurboFan before round ${round} (status ${before})`);
      await new Promise((r) => setTimeout(r, 50)); // well inside the optimized loop
      writer.release(); // a plain store, in this process
      const line = await reader.next(5000 * slowdown); // the bound: 5 s (x10 emulated)
      const [seen, r, iterations, after] = line.split(' ');
      assert.deepEqual([seen, Number(r)], ['seen', round], line);
      assert.ok(Number(iterations) > 0, `the reader spun, and saw the store before its ${2 ** 30 - 1} turns ran out (${line})`);
      assert.ok(Number(after) & TURBOFANNED, `still TurboFan code when it saw the store, not deoptimized (${line})`);
      reader.send('next');
    }
  } finally {
    reader.proc.kill('SIGKILL');
    await reader.exited;
    writer.close();
    Gauge.unlink(name);
  }
});

test('one writer per share: NamedSemaphore and the CLI refuse share names with ERR_GAUGE_SHARE', async () => {
  const name = uniqueName('gm-share');
  const g = new Gauge(name);
  try {
    g.release(2);
    const [share] = sharesOf(name);
    assert.ok(share, 'the gauge has a share');
    for (const make of [
      () => new NamedSemaphore(share),
      () => new NamedSemaphore(share, { create: false }),
      () => new NamedSemaphore(share.slice(1)), // without its '/'
      () => NamedSemaphore.unlink(share),
    ]) {
      assert.throws(make, (e) => e.code === 'ERR_GAUGE_SHARE' && e.message.includes(`gauge '${name}'`), String(make));
    }
    // Any name shaped like a share is refused, whether or not it exists.
    assert.throws(() => new NamedSemaphore(`${name}~1.2.3.0badf00d`), { code: 'ERR_GAUGE_SHARE' });
    // Names that only look close are plain semaphores.
    for (const plain of [`${name}~gauge2`, `${name}~1.2.3`, `${name}~1.2.3.nothex00`]) {
      new NamedSemaphore(plain).close();
      assert.equal(NamedSemaphore.unlink(plain), true);
    }
    const cli = path.join(root, 'dist', 'cli.js');
    for (const args of [['post', share], ['wait', share, '--timeout', '0'], ['get', share], ['unlink', share], ['create', share]]) {
      const r = await run(process.execPath, [cli, ...args]);
      assert.notEqual(r.code, 0, `${args[0]} is refused`);
      assert.match(r.stderr, /ERR_GAUGE_SHARE|share of the gauge/, `${args[0]}: ${r.stderr}`);
    }
    assert.equal(g.value, 2, 'nothing wrote the share');
    assert.equal(sharesOf(name).length, 1, 'nothing removed it');
  } finally {
    g.close();
    Gauge.unlink(name);
  }
});

test('a write to a share by another process (a C program, a hand) is noticed by its owner and healed: the total is exact again', async () => {
  const name = uniqueName('gm-foreign');
  const owner = child(`
    const g = new lib.Gauge(${JSON.stringify(name)});
    g.release(3);
    console.log('held');
    (async () => {
      for (;;) {
        const cmd = await nextInput();
        if (cmd === 'pair') { g.release(); g.acquire(); }
        console.log(g.local + ' ' + g.value);
      }
    })();
    process.on('warning', (w) => console.error('warning ' + w.code));
  `);
  try {
    assert.equal(await owner.next(), 'held');
    assert.equal(Gauge.read(name), 3);
    const [share] = sharesOf(name);
    // What a foreign sem_post does: the binding's post, on the owner's share.
    const h = binding.open(share, false, false, 0, 0);
    assert.equal(binding.postCount(h.id, 5), undefined);
    binding.close(h.id);
    assert.equal(Gauge.read(name), 8, 'the foreign posts show, for now');
    owner.send('pair'); // the owner's next store finds its word changed
    assert.equal(await owner.next(), '3 3');
    assert.equal(Gauge.read(name), 3, 'healed: exactly what the owner holds');
    assert.deepEqual(sharesOf(name).length, 1, 'the written share was given up for a new one');
    assert.notEqual(sharesOf(name)[0], share);
    await until(() => /warning NAMED_SEMAPHORE_SHARE_LOST/.test(owner.stderr()), 5000 * slowdown);
    assert.match(owner.stderr(), /warning NAMED_SEMAPHORE_SHARE_LOST/);
  } finally {
    owner.proc.kill('SIGKILL');
    await owner.exited;
    Gauge.unlink(name);
  }
});

test("C's sem_getvalue on a share reads its owner's local, stored with no call", { skip: emulated('the semtool is built for the host') }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-gm-'));
  const semtool = path.join(dir, 'semtool');
  execFileSync('cc', ['-O2', '-pthread', '-o', semtool, path.join(__dirname, 'fixtures', 'semtool.c')]);
  const name = uniqueName('gm-c');
  const g = new Gauge(name);
  try {
    const [share] = sharesOf(name);
    for (const step of [() => g.release(), () => g.release(6), () => g.acquire(), () => g.releaseAndRead()]) {
      step();
      const r = await run(semtool, [share, 'value']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(Number(r.stdout.trim()), g.local);
    }
  } finally {
    g.close();
    Gauge.unlink(name);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('layout check: where sem_wait does not count its waiter in the high half (glibc before 2.21), no words: the native paths count exactly', { skip: emulated('the preload is built for the host') }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsem-gm-'));
  const shim = path.join(dir, 'old-sem-wait.so');
  execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, path.join(__dirname, 'fixtures', 'old-sem-wait.c')]);
  const name = uniqueName('gm-old');
  const here = new Gauge(name);
  here.release(4);
  const old = child(
    `
    const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native'))});
    const sem = binding.open(${JSON.stringify(name + '-plain')}, true, false, 0o600, 0);
    const g = new lib.Gauge(${JSON.stringify(name)});
    g.release(2);
    for (let i = 0; i < 1000; i++) { g.release(); g.acquire(); }
    const v = g.value;
    const rr = g.releaseAndRead(); g.acquire();
    console.log(JSON.stringify({ word: sem.word !== undefined, v, rr, local: g.local }));
    binding.close(sem.id);
    lib.NamedSemaphore.unlink(${JSON.stringify(name + '-plain')});
    (async () => { await nextInput(); g.close(); console.log('closed'); })();
  `,
    // After what is preloaded already (test:sanitize's ASan runtime must come first).
    { env: { ...process.env, LD_PRELOAD: [process.env.LD_PRELOAD, shim].filter(Boolean).join(' ') } },
  );
  try {
    const r = JSON.parse(await old.next());
    assert.deepEqual(r, { word: false, v: 6, rr: 7, local: 2 }, 'no value word, and still exact');
    assert.equal(here.value, 6, "this process reads the other's native posts");
    old.send('close');
    assert.equal(await old.next(), 'closed');
    assert.equal(here.value, 4);
  } finally {
    old.proc.kill('SIGKILL');
    await old.exited;
    here.close();
    Gauge.unlink(name);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
