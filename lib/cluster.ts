// named-semaphore/cluster: keep a gauge exact when the processes that hold
// parts of it die. A process killed outright (SIGKILL, the OOM killer) leaves
// its share counted until someone reaps the gauge; these reap at the right
// moments.
import cluster from 'node:cluster';
import { Gauge, reapGauge, type GaugeOrName } from './gauge';
import { hasCode, invalidArgType } from './errors';
import * as shares from './shares';
import * as validate from './validate';

/** A function that reaps the gauge and returns how much left the total; 0 while the gauge does not exist. */
function reaper(gaugeOrName: unknown): () => number {
  if (gaugeOrName instanceof Gauge) return () => (gaugeOrName.closed ? 0 : gaugeOrName.reap());
  if (typeof gaugeOrName !== 'string') throw invalidArgType('gaugeOrName', 'a Gauge or a string', gaugeOrName);
  const name = validate.semaphoreName(gaugeOrName, 'gaugeOrName', shares.SHARE_SUFFIX_BYTES);
  return () => {
    try {
      return reapGauge(name);
    } catch (error) {
      if (hasCode(error, 'ENOENT')) return 0; // no process opened it yet
      throw error;
    }
  };
}

/**
 * Reaps, reporting a failure as a process warning rather than throwing from a
 * timer or an event; once per cause (its code, else its message) until a reap
 * succeeds, not at every interval.
 */
function quietly(reap: () => number): () => void {
  let warned: unknown;
  return () => {
    try {
      reap();
      warned = undefined;
    } catch (error) {
      const cause = (error as { code?: unknown }).code ?? (error as Error).message;
      if (cause === warned) return;
      warned = cause;
      process.emitWarning(`named-semaphore: could not reap the gauge: ${(error as Error).message}`, {
        code: 'NAMED_SEMAPHORE_REAP_FAILED',
      });
    }
  };
}

/**
 * In a cluster's primary: reaps the gauge whenever a worker exits, however it
 * died, so the total is exact again as soon as the primary hears of it. Reaps
 * once now too (shares left by an earlier run). Returns a function that stops.
 */
export function reapOnWorkerExit(gaugeOrName: GaugeOrName): () => void {
  const reap = quietly(reaper(gaugeOrName));
  if (!cluster.isPrimary) {
    throw Object.assign(new Error('reapOnWorkerExit() belongs in the cluster primary; this is a worker'), {
      code: 'ERR_NOT_CLUSTER_PRIMARY',
    });
  }
  cluster.on('exit', reap);
  reap();
  return () => {
    cluster.removeListener('exit', reap);
  };
}

/**
 * Reaps the gauge every `ms` milliseconds, for servers without a cluster
 * primary (PM2, several unrelated servers): call it in any one or several
 * processes. The timer does not keep the process alive. Returns a function
 * that stops.
 */
export function reapEvery(gaugeOrName: GaugeOrName, ms: number): () => void {
  const reap = quietly(reaper(gaugeOrName));
  validate.wholeNumber(ms, 'ms', 1, 2 ** 31 - 1);
  const timer = setInterval(reap, ms);
  timer.unref();
  return () => {
    clearInterval(timer);
  };
}
export { closeOnSignals, type CloseOnSignalsOptions, type ShutdownTarget } from './shutdown';
