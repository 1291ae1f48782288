// A consumer of every public entry point, compiled by test/pack.sh with
// strict tsc and no skipLibCheck against the packed tarball, under node10
// (CommonJS), node16 (as CommonJS .ts and as ESM .mts) and bundler
// resolution. fastify is not installed for it: /fastify must not need it.
import { ErrorCodes, Gauge, isSemaphoreError, NamedSemaphore, NAME_MAX_BYTES, SEM_VALUE_MAX, SemaphoreError } from 'named-semaphore';
import type { ErrorCode, GaugeOptions, SemaphoreOptions, SyncWaitOptions, WaitMechanism, WaitOptions } from 'named-semaphore';
import { busyMiddleware, busyToken, listenQueue, morganBusyToken, pinoBusyProps } from 'named-semaphore/http';
import type { GaugeOrName, Listener } from 'named-semaphore/http';
import busyPlugin from 'named-semaphore/fastify';
import { busyPlugin as namedBusyPlugin } from 'named-semaphore/fastify';
import type { BusyPluginOptions } from 'named-semaphore/fastify';
import { reapEvery, reapOnWorkerExit } from 'named-semaphore/cluster';
import { createMetricsServer, gaugeMetric, listenQueueMetric, metricsText, TEXT_CONTENT_TYPE } from 'named-semaphore/prometheus';
import type { IncomingMessage, Server } from 'node:http';

const options: SemaphoreOptions = { create: true, exclusive: false, mode: '600', initialValue: 0 };
const sem = new NamedSemaphore('/types-check', options);
const waitOptions: WaitOptions = { timeout: 10, signal: AbortSignal.timeout(100) };
const syncOptions: SyncWaitOptions = { timeout: 0 };
const taken: Promise<boolean> = sem.wait(waitOptions);
const tookSync: boolean = sem.waitSync(syncOptions) || sem.tryWait();
const mechanism: WaitMechanism = NamedSemaphore.waitMechanism;
const limits: number = SEM_VALUE_MAX + NAME_MAX_BYTES + sem.value;

const gaugeOptions: GaugeOptions = { mode: 0o600 };
const gauge = new Gauge('/types-check-gauge', gaugeOptions);
const total: number = Gauge.read('/types-check-gauge') + gauge.local + gauge.reap();
const tracked: Promise<string> = gauge.track(async () => 'done');

// Error codes: a union with constants and a guard; a misspelt code does not compile.
function handle(error: unknown): ErrorCode | undefined {
  if (isSemaphoreError(error, 'ENOENT')) {
    const code: 'ENOENT' = error.code;
    return code;
  }
  if (isSemaphoreError(error, ErrorCodes.ERR_SEMAPHORE_CLOSED)) return error.code;
  // @ts-expect-error: no such code
  if (isSemaphoreError(error, 'ERR_SEMAPHORE_CLOSD')) return undefined;
  if (error instanceof SemaphoreError) {
    const details: [string, number, string] = [error.syscall, error.errno, error.path];
    void details;
    return error.code;
  }
  return isSemaphoreError(error) ? error.code : undefined;
}

// node:http, Express, Connect: req.busy is typed.
const middleware: (req: IncomingMessage, res: import('node:http').ServerResponse, next?: (err?: unknown) => void) => void =
  busyMiddleware('/types-check-busy');
const busy: number | undefined = ({} as IncomingMessage).busy;
const token: string | undefined = busyToken({} as IncomingMessage) ?? morganBusyToken({} as IncomingMessage);
const props: { busy: number | undefined } = pinoBusyProps({} as IncomingMessage);
const listeners: Listener[] = listenQueue(8080);
const first: number | undefined = listeners[0]?.queued;
const named: GaugeOrName = gauge;

// Fastify, without fastify installed.
const pluginOptions: BusyPluginOptions = { gauge: '/busy' };
const samePlugin: typeof busyPlugin = namedBusyPlugin;

const stops: Array<() => void> = [reapOnWorkerExit('/busy'), reapEvery(gauge, 5000)];

// Prometheus (prom-client installed, as its types need).
const metric: { set(value: number): void } = gaugeMetric({ name: 'busy', help: 'busy', gauge: '/busy' });
const queues = listenQueueMetric({ port: [8080, 8081], registry: null });
const text: string = metricsText({ names: ['/busy'], ports: [8080] }) + TEXT_CONTENT_TYPE;
const server: Server = createMetricsServer({ names: ['/busy'] });

void [taken, tookSync, mechanism, limits, total, tracked, handle, middleware, busy, token, props, first, named];
void [pluginOptions, samePlugin, stops, metric, queues, text, server];
