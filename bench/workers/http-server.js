'use strict';
// A 1-worker node:http server answering 'ok', with or without busyMiddleware
// (named-semaphore/http) first in its handler: mode('plain' | 'busy') switches
// between runs, so both are measured on one process (two processes differed
// by several percent with identical handlers). Tells the bench its port.
const http = require('node:http');
const { serve } = require('../lib/rpc');
const { busyMiddleware } = require('../../dist/http.js');

const [gaugeName] = process.argv.slice(2);
const busy = busyMiddleware(gaugeName);
let counting = false;
const server = http.createServer((req, res) => {
  if (counting) busy(req, res);
  res.end('ok');
});
const listening = new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
serve({
  port: () => listening,
  mode: ({ mode }) => {
    counting = mode === 'busy';
    return mode;
  },
  // CPU time used so far, in µs (user + system)
  cpu: () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  },
  exit: () => new Promise((resolve) => server.close(resolve)),
});
