'use strict';
// Throughput: post()+tryWait() pairs on one semaphore for `ms`, while other
// processes do the same. Driven by the bench over IPC.
const { NamedSemaphore } = require('../..');
const { serve } = require('../lib/rpc');

const open = new Map();
serve({
  open({ name }) {
    if (!open.has(name)) open.set(name, new NamedSemaphore(name));
    return true;
  },
  // Starts at `startAt` (Date.now() ms) so that every process runs at once.
  run({ name, ms, startAt }) {
    const s = open.get(name);
    while (Date.now() < startAt) {
      // spin until the common start
    }
    let pairs = 0;
    const t0 = process.hrtime.bigint();
    const end = t0 + BigInt(Math.round(ms * 1e6));
    let t = t0;
    while (t < end) {
      for (let i = 0; i < 1000; i++) {
        s.post();
        s.tryWait();
      }
      pairs += 1000;
      t = process.hrtime.bigint();
    }
    return { pairs, ns: Number(t - t0) };
  },
});
