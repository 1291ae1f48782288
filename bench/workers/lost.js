'use strict';
// Lost updates: this process and a peer each do n × (+1, +1, −1) on one
// shared count, at the same time; the count must end at 2n.
const fs = require('node:fs');
const { NamedSemaphore, Gauge } = require('../..');
const { serve } = require('../lib/rpc');

let gauge = null;

function readCount(file) {
  return Number(fs.readFileSync(file, 'utf8')) || 0;
}
function add(file, d) {
  fs.writeFileSync(file, String(readCount(file) + d));
}

const kinds = {
  // ours: one named semaphore
  sem({ name, n }) {
    const s = new NamedSemaphore(name);
    for (let i = 0; i < n; i++) {
      s.post();
      s.post();
      s.tryWait();
    }
    s.close();
  },
  // ours: a gauge; the share stays until the bench has read the total
  gauge({ name, n }) {
    gauge = new Gauge(name);
    for (let i = 0; i < n; i++) {
      gauge.release();
      gauge.release();
      gauge.acquire();
    }
  },
  // a counter file, read-modify-write without a lock
  'file-nolock'({ file, n }) {
    for (let i = 0; i < n; i++) {
      add(file, 1);
      add(file, 1);
      add(file, -1);
    }
  },
  // the same under proper-lockfile's lock (waiting for it when held)
  async 'file-lock'({ file, n }) {
    const lockfile = require('proper-lockfile');
    // Retry every millisecond for up to about 2 s (the retry package builds the
    // whole list of timeouts up front, so keep it short).
    const opts = { retries: { retries: 2000, factor: 1, minTimeout: 1, maxTimeout: 1 }, realpath: false };
    const locked = async (d) => {
      const release = await lockfile.lock(file, opts);
      try {
        add(file, d);
      } finally {
        await release();
      }
    };
    for (let i = 0; i < n; i++) {
      await locked(1);
      await locked(1);
      await locked(-1);
    }
  },
  // Redis INCR / DECR
  async redis({ port, key, n }) {
    const Redis = require('ioredis');
    const redis = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
    await redis.connect();
    for (let i = 0; i < n; i++) {
      await redis.incr(key);
      await redis.incr(key);
      await redis.decr(key);
    }
    redis.disconnect();
  },
};

serve({
  async run(args) {
    while (Date.now() < args.startAt) {
      // spin until the common start
    }
    const t0 = process.hrtime.bigint();
    await kinds[args.kind](args);
    return { ns: Number(process.hrtime.bigint() - t0) };
  },
  exit() {
    gauge?.close();
  },
});
