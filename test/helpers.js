'use strict';
// Shared by the tests: unique semaphore names that are always cleaned up, and
// child processes run as a user would run them.
const { after } = require('node:test');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { NamedSemaphore } = require('..');

const created = new Set();
let counter = 0;

/** A fresh name for this run; unlinked when the test file ends, pass or fail. */
function uniqueName(tag = 't') {
  const name = `/nsem-test-${process.pid}-${tag}-${++counter}`;
  created.add(name);
  return name;
}

after(() => {
  for (const name of created) {
    try {
      NamedSemaphore.unlink(name);
    } catch {
      // already gone or never made
    }
  }
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
// several times slower: the hang guards stretch with it.
const slowdown = process.env.NAMED_SEMAPHORE_SANITIZE === '1' ? 4 : 1;

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

module.exports = { PIDNS, uniqueName, leftovers, fixture, run, runNode, sleep, until, threadCount, waiterCount };
