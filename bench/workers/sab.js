'use strict';
// Lost updates in one process: a worker thread doing n × (+1, +1, −1) on a
// SharedArrayBuffer, with Atomics or with plain (non-atomic) reads and writes.
const { workerData, parentPort } = require('node:worker_threads');

const { sab, n, atomic } = workerData;
const count = new Int32Array(sab, 0, 1);
const gate = new Int32Array(sab, 4, 1);
Atomics.add(gate, 0, 1); // ready
while (Atomics.load(gate, 0) < 2) {
  // both ready: go
}
if (atomic) {
  for (let i = 0; i < n; i++) {
    Atomics.add(count, 0, 1);
    Atomics.add(count, 0, 1);
    Atomics.sub(count, 0, 1);
  }
} else {
  for (let i = 0; i < n; i++) {
    count[0] = count[0] + 1;
    count[0] = count[0] + 1;
    count[0] = count[0] - 1;
  }
}
parentPort.postMessage('done');
