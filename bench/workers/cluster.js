'use strict';
// Reading a count that the workers of a 2-worker cluster raise and lower:
// through prom-client's AggregatorRegistry (the primary asks each worker over
// IPC and sums the answers), or through a named-semaphore Gauge (the primary
// reads the workers' shares in /dev/shm). The primary is driven by the bench.
const cluster = require('node:cluster');
const { Gauge } = require('../..');

const GAUGE = process.env.NSB_GAUGE;

if (cluster.isWorker) {
  const client = require('prom-client');
  // Constructing one is what makes a worker answer the primary's requests.
  new client.AggregatorRegistry();
  const busy = new client.Gauge({ name: 'nsb_busy', help: 'requests in flight' });
  const ours = new Gauge(GAUGE);
  const n = Number(process.env.NSB_HOLD);
  busy.inc(n);
  ours.release(n);
  process.send({ ready: true });
  setInterval(() => {}, 1 << 30);
  process.on('disconnect', () => process.exit(0));
} else {
  const { serve } = require('../lib/rpc');
  const client = require('prom-client');
  const registry = new client.AggregatorRegistry();
  let reader = null;
  const workers = [];
  const readAggregated = async () => {
    const text = await registry.clusterMetrics();
    const m = /^nsb_busy (\d+)/m.exec(text);
    return m ? Number(m[1]) : NaN;
  };
  serve({
    async start({ workers: count }) {
      const ready = [];
      for (let i = 0; i < count; i++) {
        const w = cluster.fork({ NSB_GAUGE: GAUGE, NSB_HOLD: String(i + 1) });
        workers.push(w);
        ready.push(new Promise((resolve) => w.once('message', resolve)));
      }
      await Promise.all(ready);
      reader = new Gauge(GAUGE);
      // Both read the same total.
      return { aggregator: await readAggregated(), gauge: reader.value, read: Gauge.read(GAUGE) };
    },
    async aggregator({ n }) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) await readAggregated();
      return Number(process.hrtime.bigint() - t0);
    },
    value({ n }) {
      let sum = 0;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) sum += reader.value;
      const ns = Number(process.hrtime.bigint() - t0);
      if (sum !== n * 3) throw new Error(`Gauge.value read ${sum / n}, not 3`);
      return ns;
    },
    read({ n }) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) Gauge.read(GAUGE);
      return Number(process.hrtime.bigint() - t0);
    },
    exit() {
      reader?.close();
      for (const w of workers) w.process.kill('SIGTERM');
    },
  });
}
