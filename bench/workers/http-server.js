'use strict';
// A 1-worker node:http server answering 'ok', plain or with busyMiddleware
// (named-semaphore/http) first in its handler. Tells the bench its port.
const http = require('node:http');
const { serve } = require('../lib/rpc');

const [mode, gaugeName] = process.argv.slice(2);
let handler;
if (mode === 'busy') {
  const { busyMiddleware } = require('../../dist/http.js');
  const busy = busyMiddleware(gaugeName);
  handler = (req, res) => {
    busy(req, res);
    res.end('ok');
  };
} else {
  handler = (req, res) => {
    res.end('ok');
  };
}
const server = http.createServer(handler);
const listening = new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
serve({
  port: () => listening,
  // CPU time used so far, in µs (user + system)
  cpu: () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  },
  exit: () => new Promise((resolve) => server.close(resolve)),
});
