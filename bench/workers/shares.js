'use strict';
// Holds live shares of gauges, in a process of its own: `count` Gauge objects
// per gauge, each having released 1.
const { Gauge } = require('../..');
const { serve } = require('../lib/rpc');

const held = [];
serve({
  hold({ gauges }) {
    for (const { name, count } of gauges) {
      for (let i = 0; i < count; i++) {
        const g = new Gauge(name);
        g.release();
        held.push(g);
      }
    }
    return held.length;
  },
  exit() {
    for (const g of held) g.close();
  },
});
