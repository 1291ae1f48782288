'use strict';
// Cross-process wake-up latency: two processes, two semaphores. The pinger
// posts `ping` and waits on `pong`; the ponger waits on `ping` and posts
// `pong`. One round trip = two wake-ups across processes.
//
//   node pingpong.js pinger                 (driven by the bench over IPC)
//   node pingpong.js ponger-async PING PONG (wait(): the event loop stays free)
//   node pingpong.js ponger-sync PING PONG  (waitSync(): blocks its thread)
//   node pingpong.js socket-ponger          (for scale: echoes bytes on a Unix
//                                            socket, Node's own I/O on both sides)
const net = require('node:net');
const fs = require('node:fs');
const { once } = require('node:events');
const { NamedSemaphore } = require('../..');
const { serve } = require('../lib/rpc');

const [role, pingName, pongName] = process.argv.slice(2);
const parent = process.ppid;
const parentAlive = () => {
  try {
    process.kill(parent, 0);
    return true;
  } catch {
    return false;
  }
};

if (role === 'ponger-async') {
  const ping = new NamedSemaphore(pingName);
  const pong = new NamedSemaphore(pongName);
  (async () => {
    for (;;) {
      if (await ping.wait({ timeout: 500 })) pong.post();
      else if (!parentAlive()) process.exit(0);
    }
  })();
} else if (role === 'ponger-sync') {
  const ping = new NamedSemaphore(pingName);
  const pong = new NamedSemaphore(pongName);
  for (;;) {
    if (ping.waitSync({ timeout: 500 })) pong.post();
    else if (!parentAlive()) process.exit(0);
  }
} else if (role === 'socket-ponger') {
  serve({
    async listen({ path }) {
      fs.rmSync(path, { force: true });
      const server = net.createServer((c) => c.on('data', (d) => c.write(d)));
      server.listen(path);
      await once(server, 'listening');
    },
  });
} else if (role === 'pinger') {
  const open = new Map();
  const sockets = new Map();
  const sem = (name) => {
    if (!open.has(name)) open.set(name, new NamedSemaphore(name));
    return open.get(name);
  };
  serve({
    // How wait() waits here: 'io_uring' or 'thread'.
    mechanism: () => NamedSemaphore.waitMechanism,
    // n round trips with wait(); elapsed ns
    async wait({ ping, pong, n }) {
      const a = sem(ping);
      const b = sem(pong);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        a.post();
        await b.wait();
      }
      return Number(process.hrtime.bigint() - t0);
    },
    // n one-byte round trips over the Unix socket at `path`; elapsed ns
    async socket({ path, n }) {
      if (!sockets.has(path)) {
        const c = net.connect(path);
        await once(c, 'connect');
        sockets.set(path, c);
      }
      const c = sockets.get(path);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        c.write('x');
        await once(c, 'data');
      }
      return Number(process.hrtime.bigint() - t0);
    },
    // n round trips with waitSync(); elapsed ns
    waitSync({ ping, pong, n }) {
      const a = sem(ping);
      const b = sem(pong);
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        a.post();
        b.waitSync();
      }
      return Number(process.hrtime.bigint() - t0);
    },
  });
} else {
  throw new Error(`unknown role ${role}`);
}
