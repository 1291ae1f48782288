'use strict';
// Child processes that the bench drives over IPC: the parent sends
// {id, cmd, ...args}; the child answers {id, result} or {id, error}.
const { fork } = require('node:child_process');

const children = new Set();

/** Forks `script` with `args`; returns {child, call(cmd, args), stop()}. */
function start(script, args = [], options = {}) {
  const child = fork(script, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], ...options });
  children.add(child);
  let nextId = 1;
  const waiting = new Map();
  child.on('message', (m) => {
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if (m.error !== undefined) w.reject(new Error(`${script} ${m.cmd ?? ''}: ${m.error}`));
    else w.resolve(m.result);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  exited.then(({ code, signal }) => {
    children.delete(child);
    for (const w of waiting.values()) w.reject(new Error(`${script} exited (${signal ?? code}) during a call`));
    waiting.clear();
  });
  return {
    child,
    pid: child.pid,
    exited,
    call(cmd, callArgs = {}) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        child.send({ id, cmd, ...callArgs });
      });
    },
    /** Asks it to exit, then kills it if it has not within `ms`. */
    async stop(ms = 2000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ id: 0, cmd: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), ms);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Kills every child still running (at the end, or on an error). */
function killAll() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
}

/** In a child: answers the parent's calls with `handlers[cmd](args)`. */
function serve(handlers) {
  process.on('message', async (m) => {
    if (m.cmd === 'exit') {
      await handlers.exit?.();
      process.exit(0);
    }
    try {
      const result = await handlers[m.cmd](m);
      process.send({ id: m.id, result });
    } catch (e) {
      process.send({ id: m.id, cmd: m.cmd, error: String((e && e.stack) || e) });
    }
  });
  // The bench went away: go too.
  process.on('disconnect', () => process.exit(0));
}

module.exports = { start, killAll, serve };
