'use strict';
// The emulated arm64 side of test/arm64/interop.test.js. Loads the installed
// package (NAMED_SEMAPHORE_PACKAGE), says which addon file it mapped, then:
//   side.js wait NAME          prints "ready <addon>", waits (async), prints "woken <result>"
//   side.js post NAME          prints "ready <addon>", posts once, prints "posted"
//   side.js hold GAUGE N       prints "ready <addon>", holds N in a Gauge, prints "held";
//                              for each line on stdin prints "read <Gauge.read> <value> <reap()>";
//                              at the end of stdin closes the gauge and exits
const fs = require('node:fs');
const readline = require('node:readline');
const { NamedSemaphore, Gauge } = require(process.env.NAMED_SEMAPHORE_PACKAGE);

const [cmd, name, n] = process.argv.slice(2);
const addons = new Set(
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n')
    .map((line) => line.split(/\s+/).slice(5).join(' '))
    .filter((file) => file.endsWith('.node')),
);
console.log(`ready ${process.arch} ${[...addons].join(',')}`);

if (cmd === 'wait') {
  const sem = new NamedSemaphore(name, { create: false });
  sem.wait({ timeout: 120000 }).then((got) => {
    console.log(`woken ${got}`);
    sem.close();
  });
} else if (cmd === 'post') {
  const sem = new NamedSemaphore(name, { create: false });
  sem.post();
  sem.close();
  console.log('posted');
} else if (cmd === 'hold') {
  const gauge = new Gauge(name);
  gauge.release(Number(n));
  console.log('held');
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', () => console.log(`read ${Gauge.read(name)} ${gauge.value} ${gauge.reap()}`));
  rl.on('close', () => gauge.close());
} else {
  throw new Error(`unknown command ${cmd}`);
}
