'use strict';
// Idle waits: how much CPU COUNT pending wait() calls on COUNT semaphores
// use while nothing is posted, and how many threads serve them. Prints JSON.
// The mechanism is the environment's (NAMED_SEMAPHORE_WAITER=thread forces
// the waiter threads that containers get).
//
//   node idle.js PREFIX COUNT SECONDS
const fs = require('node:fs');
const { NamedSemaphore } = require('../..');

const [prefix, countArg, secondsArg] = process.argv.slice(2);
const count = Number(countArg);
const threads = () => fs.readdirSync('/proc/self/task').length;

(async () => {
  const before = threads();
  const sems = [];
  for (let i = 0; i < count; i++) sems.push(new NamedSemaphore(`${prefix}-${i}`));
  const waits = sems.map((s) => s.wait());
  await new Promise((r) => setTimeout(r, 300)); // every wait queued and asleep
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, Number(secondsArg) * 1000));
  const cpu = process.cpuUsage(cpu0);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const extraThreads = threads() - before;
  for (const s of sems) s.post();
  await Promise.all(waits);
  for (const s of sems) {
    s.unlink();
    s.close();
  }
  console.log(JSON.stringify({ mechanism: NamedSemaphore.waitMechanism, count, cpuShare: (cpu.user + cpu.system) / wallUs, extraThreads }));
})();
