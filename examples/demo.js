'use strict';
// The short demo: two processes share a named semaphore and a gauge.
//
//   node examples/demo.js
//
// This process waits on a semaphore asynchronously (its event loop keeps
// ticking) while a child process posts to it by name; both hold part of a
// gauge; the child is then killed with SIGKILL while holding its part, and
// reap() makes the gauge exact again.
const { spawn } = require('node:child_process');
const { NamedSemaphore, Gauge } = require('..');

const tag = `demo-${process.pid}`;
const semName = `/${tag}-jobs`;
const gaugeName = `/${tag}-busy`;

if (process.argv[2] === 'child') {
  // The other process: hold 2 on the gauge, post 3 jobs, then wait to be killed.
  const jobs = new NamedSemaphore(process.argv[3], { create: false });
  const busy = new Gauge(process.argv[4]);
  busy.release(2);
  let n = 0;
  const timer = setInterval(() => {
    jobs.post();
    console.log(`  [child ${process.pid}] posted job ${++n}; gauge total now ${busy.value}`);
    if (n === 3) clearInterval(timer);
  }, 300);
  setInterval(() => {}, 1000); // stay alive until killed
  return;
}

function cleanup() {
  NamedSemaphore.unlink(semName);
  Gauge.unlink(gaugeName);
}

async function main() {
  const jobs = new NamedSemaphore(semName, { initialValue: 0 });
  const busy = new Gauge(gaugeName);
  busy.release(1);
  console.log(`parent ${process.pid}: created ${semName} (value ${jobs.value}) and gauge ${gaugeName} (total ${busy.value})`);

  const child = spawn(process.execPath, [__filename, 'child', semName, gaugeName], { stdio: ['ignore', 'inherit', 'inherit'] });
  const ticks = setInterval(() => process.stdout.write('.'), 50); // the event loop stays free

  for (let i = 1; i <= 3; i++) {
    const got = await jobs.wait({ timeout: 5000 });
    console.log(`\nparent: wait() #${i} -> ${got}; semaphore value ${jobs.value}`);
  }
  clearInterval(ticks);
  console.log(`parent: gauge total ${busy.value} (parent holds ${busy.local}, child holds 2)`);

  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  console.log(`parent: child killed with SIGKILL while holding 2; gauge still reads ${busy.value}`);
  const removed = busy.reap();
  console.log(`parent: reap() removed ${removed}; gauge total ${busy.value}, exact again`);

  const timedOut = await jobs.wait({ timeout: 200 });
  console.log(`parent: wait({ timeout: 200 }) with nothing posted -> ${timedOut}`);
  busy.close();
  jobs.close();
}

process.once('SIGINT', () => {
  cleanup();
  process.exit(130);
});
main()
  .then(() => console.log('done: every semaphore removed'))
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(cleanup);
