// closeOnSignals (exported by named-semaphore/cluster): a server stopped
// with SIGTERM (docker stop, kubectl delete pod, systemctl stop) gives its
// count back before it dies, so the gauge is exact without a reap. Only a
// process that calls it changes what these signals do.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { Server } from 'node:net';
import { constants } from 'node:os';
import { Gauge, closeOpenGauges, reapGauge } from './gauge';
import { hasCode, invalidArgType, invalidArgValue } from './errors';
import * as shares from './shares';
import * as validate from './validate';

/** What closeOnSignals stops: a server, a gauge (or a gauge's name), or `cluster` in the primary. */
export type ShutdownTarget = Server | Gauge | string | typeof cluster;

export interface CloseOnSignalsOptions {
  /** The signals that start the shutdown (default SIGTERM and SIGINT). */
  signals?: NodeJS.Signals[];
  /**
   * Milliseconds that in-flight requests (or the workers) get before they are
   * cut off (default 5000). Keep it below the platform's grace period before
   * SIGKILL: docker stop 10 s, Kubernetes 30 s, systemd 90 s.
   */
  timeout?: number;
}

const DEFAULT_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];
const DEFAULT_TIMEOUT_MS = 5000;
// Still alive this long after raising the signal at itself: the kernel
// dropped it (PID 1 of a PID namespace has no default actions) or someone
// else listens for it. Then exit with the shell's status for it, 128 + n.
const RERAISE_GRACE_MS = 50;

function notPrimary(): Error {
  return Object.assign(new Error('closeOnSignals(cluster) belongs in the cluster primary; this is a worker'), {
    code: 'ERR_NOT_CLUSTER_PRIMARY',
  });
}

function checkSignals(value: unknown): NodeJS.Signals[] {
  if (value === undefined) return DEFAULT_SIGNALS;
  if (!Array.isArray(value)) throw invalidArgType('options.signals', 'an array of signal names', value);
  if (value.length === 0) throw invalidArgValue('options.signals', value, 'must name at least one signal');
  for (const signal of value) {
    if (typeof signal !== 'string') throw invalidArgType('options.signals', 'an array of signal names', signal);
    if (!Object.hasOwn(constants.signals, signal) || signal === 'SIGKILL' || signal === 'SIGSTOP') {
      throw invalidArgValue('options.signals', signal, 'must hold signal names a process can catch');
    }
  }
  return [...new Set(value as NodeJS.Signals[])];
}

const IDLE_CHECK_MS = 50;

/** Resolves once the server has stopped accepting and its connections have ended. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    // node:http: a kept-alive connection, idle now or once its request is
    // answered, would hold close() back until its keep-alive timeout.
    const closeIdle = (server as { closeIdleConnections?: () => void }).closeIdleConnections?.bind(server);
    const timer = closeIdle && setInterval(closeIdle, IDLE_CHECK_MS);
    server.close(() => {
      clearInterval(timer);
      resolve();
    }); // (an error here only says it was not listening)
    closeIdle?.();
  });
}

/** The workers alive now, each with a promise of its exit. */
function liveWorkers(): Map<Worker, Promise<void>> {
  const exits = new Map<Worker, Promise<void>>();
  for (const worker of Object.values(cluster.workers ?? {})) {
    if (worker === undefined || worker.isDead()) continue;
    exits.set(worker, new Promise((resolve) => worker.once('exit', () => resolve())));
  }
  return exits;
}

/** Waits for `work` at most `ms`; true if the time ran out first. */
async function timedOut(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<true>((resolve) => (timer = setTimeout(resolve, ms, true)));
  try {
    return (await Promise.race([work.then(() => false), deadline])) === true;
  } finally {
    clearTimeout(timer);
  }
}

function warn(what: string, error: unknown): void {
  process.emitWarning(`named-semaphore: ${what}: ${(error as Error)?.message ?? String(error)}`, {
    code: 'NAMED_SEMAPHORE_SHUTDOWN',
  });
}

/**
 * On the first of `signals` (default SIGTERM, SIGINT): stops the servers from
 * accepting and lets their in-flight requests finish, at most `timeout` ms
 * (kept-alive connections are closed once idle; at the timeout, all are); in the cluster primary, with `cluster`
 * among the targets, passes the signal on to each worker and
 * SIGKILLs those still alive after `timeout`. Then reaps the gauges given (a
 * Gauge or a name: shares of processes that died), closes every Gauge of this
 * thread, and ends the process by the same signal, so its parent sees what it
 * would have seen without this (where the kernel ignores it, as for PID 1 in
 * a container, it exits with 128 + the signal's number). Later signals of the
 * list are ignored while it shuts down.
 *
 * `closeOnSignals(server)` in a server or each worker;
 * `closeOnSignals([cluster, '/busy'])` in a cluster's primary.
 * Returns a function that removes the listeners (before a signal came).
 */
export function closeOnSignals(targets: ShutdownTarget | ShutdownTarget[], options?: CloseOnSignalsOptions): () => void {
  const servers: Server[] = [];
  const gauges: (Gauge | string)[] = [];
  let workers = false;
  for (const target of Array.isArray(targets) ? targets : [targets]) {
    if (target instanceof Server) servers.push(target);
    else if (target instanceof Gauge) gauges.push(target);
    else if (typeof target === 'string') gauges.push(validate.semaphoreName(target, 'targets', shares.SHARE_SUFFIX_BYTES));
    else if (target === cluster) {
      if (!cluster.isPrimary) throw notPrimary();
      workers = true;
    } else throw invalidArgType('targets', 'a net.Server, a Gauge, a gauge name, cluster, or an array of them', target);
  }
  const opts = validate.options<CloseOnSignalsOptions>(options);
  const signals = checkSignals(opts.signals);
  const timeout = opts.timeout === undefined ? DEFAULT_TIMEOUT_MS : validate.wholeNumber(opts.timeout, 'options.timeout', 0, 2 ** 31 - 1);

  let stopping = false;
  const removeListeners = (): void => {
    for (const signal of signals) process.removeListener(signal, onSignal);
  };

  async function shutDown(signal: NodeJS.Signals): Promise<void> {
    try {
      const exits = workers ? liveWorkers() : new Map<Worker, Promise<void>>();
      for (const worker of exits.keys()) worker.process.kill(signal);
      const work = Promise.all([...servers.map(closeServer), ...exits.values()]);
      if (await timedOut(work, timeout)) {
        // Out of time: cut what is left. A closed connection ends its request's count.
        for (const server of servers) (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        for (const worker of exits.keys()) if (!worker.isDead()) worker.process.kill('SIGKILL');
        await Promise.all(exits.values());
      }
    } catch (error) {
      warn('shutdown', error);
    }
    for (const gauge of gauges) {
      try {
        if (typeof gauge === 'string') reapGauge(gauge);
        else if (!gauge.closed) gauge.reap();
      } catch (error) {
        if (!hasCode(error, 'ENOENT')) warn('could not reap the gauge', error);
      }
    }
    closeOpenGauges();
    removeListeners();
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    setTimeout(() => process.exit(128 + constants.signals[signal]), RERAISE_GRACE_MS);
  }

  function onSignal(signal: NodeJS.Signals): void {
    if (stopping) return;
    stopping = true;
    void shutDown(signal);
  }

  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    if (!stopping) removeListeners();
  };
}
