'use strict';
// The `header` option of busyMiddleware and of the fastify plugin: each
// response carries the request's busy, for a proxy in front to log (see
// test/nginx.test.js for nginx itself); a bad header name fails at once.
const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { Gauge } = require('..');
const { busyMiddleware } = require('../dist/http');
const { busyPlugin } = require('../dist/fastify');
const { uniqueName } = require('./helpers');

/** One GET on a new connection; resolves its status and headers. */
function get(port, path = '/') {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }));
      })
      .on('error', reject);
  });
}

const BAD_HEADERS = [
  [42, 'ERR_INVALID_ARG_TYPE'],
  [null, 'ERR_INVALID_ARG_TYPE'],
  [['X-Busy'], 'ERR_INVALID_ARG_TYPE'],
  ['', 'ERR_INVALID_ARG_VALUE'],
  ['X Busy', 'ERR_INVALID_ARG_VALUE'],
  ['X-Busy:', 'ERR_INVALID_ARG_VALUE'],
  ['X-Busy\r\nSet-Cookie: a=b', 'ERR_INVALID_ARG_VALUE'],
  ['X-Büsy', 'ERR_INVALID_ARG_VALUE'],
];

test('busyMiddleware({ header }) sets the header to req.busy on every response; bad names fail with a code', async () => {
  const name = uniqueName('hdr');
  const gauge = new Gauge(name);
  const other = new Gauge(name);
  const seen = [];
  const count = busyMiddleware(gauge, { header: 'X-Busy' });
  const server = http.createServer((req, res) => {
    count(req, res);
    seen.push(req.busy);
    res.end();
  });
  try {
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const port = server.address().port;
    const answers = [];
    for (const held of [0, 3, 1]) {
      if (held > 0) other.release(held); // someone else's requests, so busy differs from run to run
      answers.push(await get(port));
    }
    assert.deepEqual(seen, [1, 4, 5]);
    assert.deepEqual(
      answers.map((a) => a.headers['x-busy']),
      ['1', '4', '5'],
    );

    // Without the option, no header.
    const plain = busyMiddleware(gauge);
    const server2 = http.createServer((req, res) => {
      plain(req, res);
      res.end();
    });
    await new Promise((r) => server2.listen(0, '127.0.0.1', r));
    const { headers } = await get(server2.address().port);
    server2.close();
    assert.equal(headers['x-busy'], undefined);

    for (const [header, code] of BAD_HEADERS) {
      assert.throws(() => busyMiddleware(gauge, { header }), { code, message: /options\.header/ }, String(header));
    }
    assert.throws(() => busyMiddleware(gauge, 'X-Busy'), { code: 'ERR_INVALID_ARG_TYPE', message: /"options"/ });
    busyMiddleware(gauge, {}); // header is optional
    busyMiddleware(gauge, { header: undefined });
  } finally {
    server.close();
    other.close();
    gauge.close();
    Gauge.unlink(name);
  }
});

test('the fastify plugin takes the same header option', async () => {
  const name = uniqueName('hdr-fastify');
  const other = new Gauge(name);
  const fastify = require('fastify')();
  fastify.register(busyPlugin, { gauge: name, header: 'x-busy' });
  fastify.get('/', async (request) => ({ busy: request.busy }));
  try {
    other.release(2);
    const res = await fastify.inject({ method: 'GET', url: '/' });
    assert.equal(res.json().busy, 3);
    assert.equal(res.headers['x-busy'], '3');
    assert.equal(Gauge.read(name), 2, 'given back');

    for (const [header, code] of BAD_HEADERS) {
      const bad = require('fastify')();
      bad.register(busyPlugin, { gauge: name, header });
      await assert.rejects(bad.ready(), { code, message: /options\.header/ }, String(header));
    }
  } finally {
    await fastify.close();
    other.close();
    Gauge.unlink(name);
  }
});
