'use strict';
// What the bench needs before it measures: the C program, the no-op addon,
// a redis-server of its own, and names it can clean up afterwards.
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const BENCH = path.join(__dirname, '..');
const ROOT = path.join(BENCH, '..');
const WORK = path.join(BENCH, '.work');

/** Semaphore names of this run: `/nsb<pid>-<what>`, removed by cleanup(). */
const PREFIX = `nsb${process.pid}-`;
const semName = (what) => `/${PREFIX}${what}`;

function cleanup() {
  let names = [];
  try {
    names = fs.readdirSync('/dev/shm').filter((f) => f.startsWith(`sem.${PREFIX}`));
  } catch {}
  for (const f of names) {
    try {
      fs.unlinkSync(path.join('/dev/shm', f));
    } catch {}
  }
}

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return r.stdout;
}

/** Builds bench/c/semloop.c with cc -O2; returns the binary's path. */
function buildC() {
  fs.mkdirSync(WORK, { recursive: true });
  const out = path.join(WORK, 'semloop');
  sh('cc', ['-O2', '-Wall', '-o', out, path.join(BENCH, 'c', 'semloop.c'), '-lpthread']);
  return out;
}

function hashFiles(dir) {
  const h = crypto.createHash('sha256');
  for (const f of fs.readdirSync(dir).sort()) h.update(f).update(fs.readFileSync(path.join(dir, f)));
  h.update(process.version);
  return h.digest('hex');
}

/**
 * Builds bench/noop (plain N-API) with node-gyp into bench/.work/noop, unless
 * the same sources were built by this Node already. Returns the addon.
 */
function buildNoop() {
  const src = path.join(BENCH, 'noop');
  const dir = path.join(WORK, 'noop');
  const hash = hashFiles(src);
  const stamp = path.join(dir, '.built');
  const addon = path.join(dir, 'build', 'Release', 'noop.node');
  const fresh = fs.existsSync(addon) && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === hash;
  if (!fresh) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    const args = [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild'];
    const nodedir = nodeDir();
    if (nodedir) args.push(`--nodedir=${nodedir}`);
    sh(process.execPath, args, { cwd: dir });
    fs.writeFileSync(stamp, hash);
  }
  return require(addon);
}

/** npm's nodedir setting (`npm config get nodedir`), if any. */
function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  try {
    const v = execFileSync('npm', ['config', 'get', 'nodedir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return v && v !== 'undefined' && v !== 'null' ? v : '';
  } catch {
    return '';
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

/** Installs Debian's redis-server with apt-get when missing (as root only). */
function installRedis(log) {
  if (which('redis-server')) return { ok: true };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0 || !which('apt-get')) {
    return { ok: false, why: 'redis-server is not installed, and apt-get (as root) is not available to install it' };
  }
  log('  installing redis-server with apt-get (Debian package)…');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'redis-server'], { env, encoding: 'utf8' });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update', '-qq'], { env, encoding: 'utf8' });
    r = install();
  }
  if (r.status !== 0 || !which('redis-server')) {
    return { ok: false, why: `apt-get install redis-server failed: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-2).join(' ')}` };
  }
  return { ok: true };
}

/**
 * Starts a redis-server of our own on a free loopback port, in a temporary
 * directory, without persistence. Returns {port, version, stop()} or {error}.
 */
async function startRedis({ install, log }) {
  if (!which('redis-server')) {
    if (!install) return { error: 'redis-server is not installed (quick mode does not install it; the full bench does, with apt-get)' };
    const r = installRedis(log);
    if (!r.ok) return { error: r.why };
  }
  const version = (spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout || '').trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsb-redis-'));
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // Ready when it accepts a connection.
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) return { error: `redis-server exited: ${stderr.trim()}` };
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      return { error: 'redis-server did not start within 10 s' };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    version,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Machine facts for the report. */
function machine() {
  const report = process.report.getReport();
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    node: process.version,
    glibc: report.header.glibcVersionRuntime ?? 'unknown',
    kernel: `${os.type()} ${os.release()}`,
    python: (spawnSync('python3', ['--version'], { encoding: 'utf8' }).stdout || '').trim() || 'not found',
  };
}

module.exports = { BENCH, ROOT, WORK, PREFIX, semName, cleanup, buildC, buildNoop, startRedis, machine, which };
