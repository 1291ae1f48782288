'use strict';
// Shared by the tests: unique semaphore names that are always cleaned up, and
// child processes run as a user would run them.
const { after } = require('node:test');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { NamedSemaphore, Gauge } = require('..');
const { noIoUringLauncher, probeIoUring } = require('./no-io-uring');

const created = new Set();
let counter = 0;

/** A fresh name for this run; unlinked when the test file ends, pass or fail. */
function uniqueName(tag = 't') {
  const name = `/nsem-test-${process.pid}-${tag}-${++counter}`;
  created.add(name);
  return name;
}

let copy; // readableCopy()'s folder, once made

after(() => {
  for (const name of created) {
    try {
      NamedSemaphore.unlink(name);
    } catch {
      // already gone or never made
    }
  }
  if (copy) fs.rmSync(copy, { recursive: true, force: true });
});

/** Names this process's tests left in /dev/shm (should be none). */
function leftovers() {
  const prefix = `sem.nsem-test-${process.pid}-`;
  return fs.readdirSync('/dev/shm').filter((f) => f.startsWith(prefix));
}

/** This process's PID namespace, as share names carry it. */
const PIDNS = String(fs.statSync(`/proc/${process.pid}/ns/pid`).ino);

const fixture = (name) => path.join(__dirname, 'fixtures', name);

/**
 * Runs a program to its end; resolves { code, signal, stdout, stderr }.
 * Rejects if it outlives timeoutMs (and kills it).
 */
// Under AddressSanitizer (test/sanitize.sh) every process starts and runs
// several times slower, and under qemu (test/arm64.sh, which sets
// NAMED_SEMAPHORE_EMULATED) an emulated Node takes seconds to start: the hang
// guards stretch with it.
const emulator = process.env.NAMED_SEMAPHORE_EMULATED;
const slowdown = process.env.NAMED_SEMAPHORE_SANITIZE === '1' ? 4 : emulator ? 10 : 1;

/** A skip reason when running under an emulator (test/arm64.sh), else false. */
const emulated = (why) => (emulator ? `cannot run under ${emulator}: ${why}` : false);

function run(command, args, { timeoutMs = 60000, input, env } = {}) {
  timeoutMs *= slowdown;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out after ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Runs a Node fixture: node test/fixtures/<name> ...args */
function runNode(name, args = [], options) {
  return run(process.execPath, [fixture(name), ...args.map(String)], options);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls until fn() is truthy or the time runs out; returns the last value. */
async function until(fn, timeoutMs = 5000, stepMs = 10) {
  const end = Date.now() + timeoutMs;
  let value = fn();
  while (!value && Date.now() < end) {
    await sleep(stepMs);
    value = fn();
  }
  return value;
}

/** A gauge's total, without reaping; 0 before it exists. */
function gaugeTotal(name) {
  try {
    return Gauge.read(name);
  } catch (error) {
    if (error.code === 'ENOENT') return 0;
    throw error;
  }
}

/** Threads of this process. */
function threadCount() {
  return fs.readdirSync('/proc/self/task').length;
}

/**
 * How many waiters glibc counts on a semaphore: the high half of its 64-bit
 * counter word (the low half is the value; see src/semaphore.h).
 */
function waiterCount(name) {
  return Number(fs.readFileSync(`/dev/shm/sem.${name.slice(1)}`).readBigUInt64LE(0) >> 32n);
}

const root = path.join(__dirname, '..');

/**
 * The package as another user can load it: a copy of what `require` needs
 * (package.json, dist/, the built addon or the prebuilds, node-gyp-build) in a
 * fresh folder under os.tmpdir() that every user may read. Returns the
 * folder; `require(readableCopy())` loads the package from it. For child
 * processes that drop to another user (process.setuid, useradd), who cannot
 * enter a checkout kept in a 0700 folder (mktemp -d, /root). Made once per
 * test file, removed when the file ends, pass or fail.
 */
function readableCopy() {
  if (copy) return copy;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nsem-readable-${process.pid}-`));
  copy = dir; // removed by the after() hook above
  fs.chmodSync(dir, 0o755); // mkdtemp makes it 0700
  for (let up = path.dirname(dir); up !== path.dirname(up); up = path.dirname(up)) {
    if ((fs.statSync(up).mode & 0o001) === 0) throw new Error(`readableCopy(): other users cannot enter ${up}; set TMPDIR to a folder they can`);
  }
  const parts = ['package.json', 'dist', 'prebuilds'];
  for (const part of parts) {
    // dereference: a symlink (npm link, a linked node_modules) would lead back into the checkout.
    if (fs.existsSync(path.join(root, part))) fs.cpSync(path.join(root, part), path.join(dir, part), { recursive: true, dereference: true });
  }
  // node-gyp-build wherever it is installed: in a checkout under the package,
  // in a consumer folder (test/arm64.sh runs the tests from one) beside it.
  const gypBuild = path.dirname(require.resolve('node-gyp-build/package.json', { paths: [root] }));
  fs.cpSync(gypBuild, path.join(dir, 'node_modules', 'node-gyp-build'), { recursive: true, dereference: true });
  const release = path.join(root, 'build', 'Release');
  if (fs.existsSync(release)) {
    fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
    for (const f of fs.readdirSync(release).filter((f) => f.endsWith('.node'))) fs.copyFileSync(path.join(release, f), path.join(dir, 'build', 'Release', f));
  }
  // Readable (folders also enterable) by all, whatever the umask.
  (function open(p) {
    const stat = fs.statSync(p);
    fs.chmodSync(p, stat.mode | (stat.isDirectory() ? 0o555 : 0o444));
    if (stat.isDirectory()) for (const f of fs.readdirSync(p)) open(path.join(p, f));
  })(dir);
  return dir;
}

module.exports = {
  PIDNS,
  uniqueName,
  leftovers,
  fixture,
  run,
  runNode,
  sleep,
  until,
  threadCount,
  waiterCount,
  gaugeTotal,
  readableCopy,
  noIoUringLauncher,
  probeIoUring,
  slowdown,
  emulator,
  emulated,
};
