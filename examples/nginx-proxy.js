'use strict';
// nginx in front of an app, as the busy demo and test/nginx.test.js run it:
// its own prefix, config and logs in a temporary folder, one process
// (master_process off: nothing runs as another user, nothing outlives a
// SIGKILL), on a free loopback port. The access log carries the app's
// X-Busy header next to nginx's own upstream times, and clients never see
// the header:
//
//   log_format busy '... urt=$upstream_response_time uct=$upstream_connect_time busy=$upstream_http_x_busy';
//   proxy_hide_header X-Busy;
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const LOG_FORMAT =
  '$request_id "$request" $status rt=$request_time ' +
  'urt=$upstream_response_time uct=$upstream_connect_time busy=$upstream_http_x_busy';

/** The nginx binary, or null where it is not installed (Debian puts it in /usr/sbin). */
function findNginx() {
  for (const candidate of ['nginx', '/usr/sbin/nginx']) {
    if (spawnSync(candidate, ['-v'], { stdio: 'ignore' }).status === 0) return candidate;
  }
  return null;
}

/** A port free on 127.0.0.1 now (nginx cannot listen on port 0 and tell us). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function config(dir, port, upstreamPort) {
  return `# written by examples/nginx-proxy.js
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  log_format busy '${LOG_FORMAT}';
  access_log ${dir}/access.log busy;
  upstream app { server 127.0.0.1:${upstreamPort}; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_set_header X-Request-Id $request_id;  # the app logs it too
      proxy_hide_header X-Busy;                   # for the log, not for clients
      proxy_connect_timeout 60s;
      proxy_read_timeout 60s;
      proxy_next_upstream off;                    # one upstream try per request: one time per line
    }
  }
}
`;
}

/** Resolves once something accepts connections on the port; rejects if `failed()` says so first. */
async function waitForPort(port, failed, timeoutMs = 10000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    const why = failed();
    if (why) throw new Error(why);
    if (Date.now() > end) throw new Error(`nginx did not listen on port ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Starts nginx in front of 127.0.0.1:upstreamPort. Resolves { port, dir,
 * accessLog, lines(), stop() }; stop() ends nginx and removes its folder
 * (call it however things end). Rejects where nginx is not installed.
 */
async function startNginx(upstreamPort, { nginx = findNginx() } = {}) {
  if (nginx === null) throw Object.assign(new Error('nginx is not installed (Debian: apt-get install nginx)'), { code: 'ENOENT' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `nginx-${process.pid}-`));
  fs.mkdirSync(path.join(dir, 'tmp'));
  const conf = path.join(dir, 'nginx.conf');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    fs.writeFileSync(conf, config(dir, port, upstreamPort));
    const child = spawn(nginx, ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let exited = null;
    child.stderr.on('data', (d) => (stderr += d));
    const ended = new Promise((resolve) => child.on('close', (code, signal) => resolve((exited = signal ?? `exit ${code}`))));
    child.on('error', (error) => (exited = error.message));
    try {
      await waitForPort(port, () => exited && `nginx ended (${exited}): ${stderr}${readOr(path.join(dir, 'error.log'))}`);
    } catch (error) {
      child.kill('SIGKILL');
      await ended;
      // Someone took the port between freePort() and nginx's bind: try another.
      if (attempt < 3 && /Address already in use/.test(error.message)) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    const accessLog = path.join(dir, 'access.log');
    let stopped = null;
    return {
      port,
      dir,
      accessLog,
      /** The access log's lines so far (nginx writes each at the end of its request). */
      lines: () => readOr(accessLog).split('\n').filter(Boolean),
      /** Stops nginx (SIGTERM, its fast shutdown; SIGKILL if it takes over 5 s), removes its folder. */
      stop: () =>
        (stopped ??= (async () => {
          if (exited === null) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            await ended;
            clearTimeout(timer);
          }
          fs.rmSync(dir, { recursive: true, force: true });
        })()),
    };
  }
}

function readOr(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Parses one access-log line of LOG_FORMAT; null if it is not one. */
function parseLine(line) {
  const m = /^(\S+) "([^"]*)" (\d+) rt=(\S+) urt=(\S+) uct=(\S+) busy=(\S+)$/.exec(line);
  if (m === null) return null;
  const seconds = (s) => (s === '-' ? NaN : Number(s.split(', ').at(-1)));
  return { id: m[1], request: m[2], status: Number(m[3]), rt: seconds(m[4]), urt: seconds(m[5]), uct: seconds(m[6]), busy: m[7] };
}

module.exports = { findNginx, startNginx, parseLine, LOG_FORMAT };
