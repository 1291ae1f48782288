'use strict';
// The seccomp launcher that refuses io_uring as Docker's default profile does
// (test/fixtures/no-io-uring.c), built on first use, and a raw probe of what
// the kernel answers to io_uring. Shared by the tests (through helpers.js) and
// test/run-phases.js, so it loads neither node:test nor the package.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const source = path.join(__dirname, 'fixtures', 'no-io-uring.c');
const binary = path.join(__dirname, '..', 'build', 'test', 'no-io-uring');

/**
 * The launcher's path: `no-io-uring COMMAND ARGS...` runs COMMAND with
 * io_uring_setup, io_uring_enter and io_uring_register answering EPERM, for it
 * and every process it starts. Compiled with cc when missing or older than its
 * source; throws with the compiler's output if that fails.
 */
function noIoUringLauncher() {
  let fresh = false;
  try {
    fresh = fs.statSync(binary).mtimeMs >= fs.statSync(source).mtimeMs;
  } catch {
    // not built yet
  }
  if (!fresh) {
    fs.mkdirSync(path.dirname(binary), { recursive: true });
    const tmp = `${binary}.${process.pid}.tmp`;
    try {
      execFileSync('cc', ['-Wall', '-Wextra', '-Werror', '-O2', '-o', tmp, source], { stdio: ['ignore', 'pipe', 'pipe'] });
      // Into place whole: another process may be starting the old one.
      fs.renameSync(tmp, binary);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  return binary;
}

/**
 * What the kernel answers here to the three io_uring calls, made raw from
 * Python's ctypes (not through the addon): { setup, enter, register }, each
 * 'ok' or an errno name. Where io_uring is allowed: setup 'ok', the other two
 * 'EBADF' (they are given a closed fd). `prefix` runs the probe through a
 * launcher.
 */
function probeIoUring(prefix = []) {
  const argv = [...prefix, 'python3', path.join(__dirname, 'fixtures', 'io-uring-probe.py')];
  return JSON.parse(execFileSync(argv[0], argv.slice(1), { encoding: 'utf8' }));
}

module.exports = { noIoUringLauncher, probeIoUring };
