'use strict';
// Preloaded into each documentation block that test/docs/run.js runs: a
// server the block starts listens on a free port instead of the one written,
// gets one GET /, whose status and body are printed, and is then closed, so
// that the block can end by itself.
const http = require('node:http');
const net = require('node:net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) args[0] = 0;
  else if (args[0] !== null && typeof args[0] === 'object' && 'port' in args[0]) args[0] = { ...args[0], port: 0 };
  if (this instanceof http.Server) this.once('listening', () => visit(this));
  return listen.apply(this, args);
};

function visit(server) {
  const { port } = server.address();
  http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (body += d));
    res.on('end', () => {
      console.log(`docs: GET / -> ${res.statusCode} ${body.trim().slice(0, 200)}`);
      // Let the response's own 'close' (and an access log line) come first.
      setTimeout(() => {
        server.close();
        server.closeAllConnections?.();
      }, 50);
    });
  }).on('error', (error) => {
    console.error(`docs: GET / failed: ${error.message}`);
    process.exitCode = 1;
    server.close();
  });
}
