'use strict';
// Memory: open/close cycles and wait() calls must leave RSS flat. Run with
// --expose-gc; prints JSON. RSS is taken with the heap collected (and N-API
// finalizers run): after a warm-up of 5 %, and after each tenth of the rest.
//
//   node --expose-gc memory.js NAME CYCLES WAITS BLOCKING_EVERY
const { NamedSemaphore } = require('../..');

const [name, cyclesArg, waitsArg, everyArg] = process.argv.slice(2);
const cycles = Number(cyclesArg);
const waits = Number(waitsArg);
const blockingEvery = Number(everyArg);
const tick = () => new Promise((resolve) => setImmediate(resolve));
const mb = (bytes) => bytes / 1048576;

async function settled() {
  for (let i = 0; i < 4; i++) {
    global.gc();
    await tick();
  }
  return process.memoryUsage();
}

async function openClose(n) {
  for (let i = 0; i < n; i++) {
    new NamedSemaphore(name).close();
    if (i % 5000 === 4999) await tick(); // let finalizers run, as a server would
  }
}

async function waitCalls(sem, n) {
  // Cycles of `blockingEvery` calls: the first blockingEvery-1 find the value
  // pre-posted and resolve at once; the last really blocks (the value is 0)
  // and is woken by a post made after the call.
  let blocked = 0;
  for (let i = 0; i < n; ) {
    const immediate = Math.min(blockingEvery - 1, n - i);
    if (immediate > 0) sem.post(immediate);
    for (let k = 0; k < immediate; k++, i++) {
      if (!(await sem.wait())) throw new Error('wait() returned false');
    }
    if (i < n) {
      const p = sem.wait();
      sem.post();
      if (!(await p)) throw new Error('wait() returned false');
      blocked++;
      i++;
    }
  }
  return blocked;
}

// Runs `run` n times in 10 slices after a warm-up of 5 %, taking RSS with the
// heap collected before and after each slice: a leak grows steadily, while
// allocator and heap sizing settle early.
async function phase(label, run, n) {
  await run(Math.ceil(n * 0.05));
  const before = await settled();
  const rss = [mb(before.rss)];
  let ms = 0;
  let extra = 0;
  for (let k = 0; k < 10; k++) {
    const slice = Math.floor((n * (k + 1)) / 10) - Math.floor((n * k) / 10);
    const t0 = process.hrtime.bigint();
    extra += (await run(slice)) || 0;
    ms += Number(process.hrtime.bigint() - t0) / 1e6;
    rss.push(mb((await settled()).rss));
  }
  const after = process.memoryUsage();
  return {
    label,
    n,
    extra,
    ms,
    rss,
    rssGrowth: rss[10] - rss[0],
    rssGrowthSecondHalf: rss[10] - rss[5],
    heapGrowth: mb(after.heapUsed - before.heapUsed),
  };
}

(async () => {
  const results = [];
  results.push(await phase('open/close cycles', openClose, cycles));
  const sem = new NamedSemaphore(name);
  let wn = 0;
  results.push(
    await phase(
      'wait() calls',
      async (n) => {
        // Between phases the value must be 0, so that blocking waits block.
        while (sem.tryWait());
        const b = await waitCalls(sem, n);
        wn += n;
        return b;
      },
      waits,
    ),
  );
  sem.close();
  NamedSemaphore.unlink(name);
  process.stdout.write(JSON.stringify({ results, waitsTotal: wn }) + '\n');
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
