// Prometheus: metrics whose value is read at scrape time from /dev/shm and the
// kernel, so any one process — a worker, the cluster primary, or a sidecar —
// exports the host's true number, with no cluster aggregator and no IPC.
//
// Two ways in:
//   gaugeMetric(), listenQueueMetric()  prom-client metrics (prom-client is an
//                                       optional peer, loaded on first use)
//   metricsText()                       the text exposition format written by
//                                       hand, no prom-client needed; what
//                                       `named-semaphore serve-metrics` serves
import * as http from 'node:http';
import type * as PromClient from 'prom-client';
import { Gauge } from './gauge';
import { NamedSemaphore } from './semaphore';
import { binding } from './native';
import { hasCode, invalidArgType, sockDiagError } from './errors';
import * as shares from './shares';
import * as validate from './validate';

// ---- prom-client, loaded on first use -----------------------------------------

let promClient: typeof PromClient | undefined;

function loadPromClient(): typeof PromClient {
  if (promClient !== undefined) return promClient;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    promClient = require('prom-client') as typeof PromClient;
  } catch (cause) {
    const e = cause as { code?: unknown; message?: unknown };
    if (e?.code !== 'MODULE_NOT_FOUND' || !String(e.message).includes("'prom-client'")) throw cause;
    throw Object.assign(
      new Error(
        'named-semaphore/prometheus: gaugeMetric() and listenQueueMetric() need prom-client, ' +
          'an optional peer dependency that is not installed: npm install prom-client',
        { cause },
      ),
      { code: 'MODULE_NOT_FOUND' },
    );
  }
  return promClient;
}

/** Where a metric is registered: prom-client's default registry unless given; null: none. */
type RegistryOption = PromClient.Registry | null | undefined;

function registers(registry: RegistryOption): PromClient.Registry[] | undefined {
  if (registry === undefined) return undefined; // prom-client's default: [register]
  if (registry === null) return [];
  if (typeof registry !== 'object' || typeof (registry as { registerMetric?: unknown }).registerMetric !== 'function') {
    throw invalidArgType('options.registry', 'a prom-client Registry or null', registry);
  }
  return [registry];
}

// ---- reading a gauge, a semaphore, a listen queue -----------------------------

/** Something with a current value: a Gauge (its total) or a NamedSemaphore. */
export interface ValueSource {
  readonly name: string;
  readonly value: number;
}

/**
 * The total of the gauge `name` over every process on this host. A gauge that
 * no process has made yet (or that was unlinked) is 0: nothing holds any of it.
 */
function readGauge(name: string): number {
  try {
    return Gauge.read(name);
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return 0;
    throw error;
  }
}

function reader(source: unknown): () => number {
  if (typeof source === 'string') {
    const name = validate.semaphoreName(source, 'options.gauge', shares.SHARE_SUFFIX_BYTES);
    return () => readGauge(name);
  }
  if (source !== null && typeof source === 'object' && 'value' in source && typeof (source as ValueSource).name === 'string') {
    return () => (source as ValueSource).value;
  }
  throw invalidArgType('options.gauge', 'a gauge name, a Gauge or a NamedSemaphore', source);
}

/** One TCP listening address of a port and its accept queue. */
interface ListenQueueSample {
  address: string;
  port: number;
  /** Connections waiting to be accepted. */
  queued: number;
  /** The accept queue's limit (the listen backlog, capped by net.core.somaxconn). */
  backlog: number;
}

/**
 * The listeners on these ports (0: every port) with their accept queues. Sockets
 * on the same address and port (SO_REUSEPORT) are summed into one sample.
 */
function readListenQueues(ports: readonly number[]): ListenQueueSample[] {
  const byKey = new Map<string, ListenQueueSample>();
  for (const port of new Set(ports)) {
    const listeners = binding.listenQueue(port);
    if (typeof listeners === 'number') throw sockDiagError(listeners, port);
    for (const l of listeners) {
      const key = `${l.address}\0${l.port}`;
      const sample = byKey.get(key);
      if (sample === undefined) byKey.set(key, { address: l.address, port: l.port, queued: l.queued, backlog: l.backlog });
      else {
        sample.queued += l.queued;
        sample.backlog += l.backlog;
      }
    }
  }
  return [...byKey.values()];
}

function listenPorts(port: unknown): number[] {
  const list = Array.isArray(port) ? port : [port];
  if (list.length === 0) throw invalidArgType('options.port', 'a port number or a non-empty array of them', port);
  return list.map((p) => validate.wholeNumber(p, 'options.port', 0, 65535));
}

// ---- prom-client metrics --------------------------------------------------------

export interface GaugeMetricOptions {
  /** The metric's name, e.g. 'http_requests_in_flight'. */
  name: string;
  /** Its HELP text (default: says which gauge it reads). */
  help?: string;
  /**
   * What it reports: a gauge name (its total, read with Gauge.read; 0 while no
   * process has made it), a Gauge (its total), or a NamedSemaphore (its value).
   */
  gauge: string | ValueSource;
  /** Registered here; default prom-client's default `register`; null: nowhere. */
  registry?: PromClient.Registry | null;
  /** Constant labels on its one series, e.g. { pool: 'web' }. */
  labels?: Record<string, string>;
}

/**
 * A prom-client Gauge whose value is read when it is scraped: the total of a
 * named-semaphore Gauge over every process on the host (or a semaphore's value).
 *
 * Every process reads the same total, so each worker, the cluster primary or a
 * sidecar can export it alone: no AggregatorRegistry, no IPC. If you do use
 * prom-client's cluster aggregation, the metric's aggregator is 'first' (not
 * 'sum', which would count the total once per worker).
 *
 * @example
 * const client = require('prom-client');
 * const { gaugeMetric } = require('named-semaphore/prometheus');
 * gaugeMetric({ name: 'http_requests_in_flight', help: 'Requests being handled, all workers', gauge: '/busy' });
 * // app.get('/metrics', async (req, res) => res.type(client.register.contentType).send(await client.register.metrics()));
 *
 * Throws MODULE_NOT_FOUND with a clear message if prom-client is not installed.
 */
export function gaugeMetric(options: GaugeMetricOptions): PromClient.Gauge {
  const o = validate.options<GaugeMetricOptions>(options);
  if (typeof o.name !== 'string') throw invalidArgType('options.name', 'of type string', o.name);
  const read = reader(o.gauge);
  const labels = o.labels ?? {};
  if (labels === null || typeof labels !== 'object') throw invalidArgType('options.labels', 'of type object', labels);
  const what = typeof o.gauge === 'string' ? `the gauge '${o.gauge}'` : `'${(o.gauge as ValueSource).name}'`;
  const help = o.help ?? `Value of ${what} over every process on this host (named-semaphore)`;
  if (typeof help !== 'string') throw invalidArgType('options.help', 'of type string', help);
  const client = loadPromClient();
  return new client.Gauge({
    name: o.name,
    help,
    labelNames: Object.keys(labels),
    registers: registers(o.registry),
    aggregator: 'first',
    collect(this: PromClient.Gauge) {
      this.set(labels, read());
    },
  });
}

export interface ListenQueueMetricOptions {
  /** The TCP port(s) whose listeners are reported; 0: every listener on the host. */
  port: number | number[];
  /** Registered here; default prom-client's default `register`; null: nowhere. */
  registry?: PromClient.Registry | null;
}

export const LISTEN_QUEUE_METRIC = 'listen_queue_connections';
export const LISTEN_BACKLOG_METRIC = 'listen_queue_max_connections';
const LISTEN_QUEUE_HELP = 'Connections waiting to be accepted on a TCP listening socket (its accept queue)';
const LISTEN_BACKLOG_HELP = "A TCP listening socket's accept queue limit (its listen backlog)";

/**
 * Two prom-client Gauges, read from the kernel (sock_diag) at scrape time, with
 * labels {address, port} for each TCP listening socket on `port`:
 *   listen_queue_connections      connections waiting to be accepted
 *   listen_queue_max_connections  the accept queue's limit (the backlog)
 * Connections queue here when every worker is busy; they are the wait a request
 * spends before the app sees it. Any process on the host may export it.
 *
 * Throws MODULE_NOT_FOUND with a clear message if prom-client is not installed.
 */
export function listenQueueMetric(options: ListenQueueMetricOptions): { queued: PromClient.Gauge; backlog: PromClient.Gauge } {
  const o = validate.options<ListenQueueMetricOptions>(options);
  const ports = listenPorts(o.port);
  const regs = registers(o.registry);
  const client = loadPromClient();
  const metric = (name: string, help: string, field: 'queued' | 'backlog'): PromClient.Gauge =>
    new client.Gauge({
      name,
      help,
      labelNames: ['address', 'port'],
      registers: regs,
      aggregator: 'first',
      collect(this: PromClient.Gauge) {
        this.reset(); // listeners that closed since the last scrape disappear
        for (const s of readListenQueues(ports)) this.set({ address: s.address, port: s.port }, s[field]);
      },
    });
  return {
    queued: metric(LISTEN_QUEUE_METRIC, LISTEN_QUEUE_HELP, 'queued'),
    backlog: metric(LISTEN_BACKLOG_METRIC, LISTEN_BACKLOG_HELP, 'backlog'),
  };
}

// ---- the text exposition format, by hand ----------------------------------------

/** The content type of what metricsText() writes. */
export const TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function labelValue(value: string | number): string {
  return String(value).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A comment line about `name`: the name escaped as a label value is, and quoted, so no name can start a line of its own. */
function comment(name: string, what: string): string {
  return `# "${labelValue(name)}": ${what}`.replace(/[\r\n]/g, ' ');
}

function series(metric: string, labels: Record<string, string | number>, value: number): string {
  const text = Object.entries(labels)
    .map(([k, v]) => `${k}="${labelValue(v)}"`)
    .join(',');
  return `${metric}{${text}} ${value}`;
}

function family(lines: string[], metric: string, help: string, samples: string[]): void {
  lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} gauge`, ...samples);
}

export interface MetricsTextOptions {
  /** Gauges and semaphores: named_semaphore_value{name, kind}. */
  names?: string[];
  /** TCP ports whose listen queues are reported (0: every listener). */
  ports?: number[];
}

/**
 * The metrics in Prometheus's text format (version 0.0.4), read now:
 *   named_semaphore_value{name="/busy",kind="gauge"} 3          a gauge's total
 *   named_semaphore_value{name="/jobs",kind="semaphore"} 1      a semaphore's value
 *   listen_queue_connections{address="0.0.0.0",port="8080"} 0
 *   listen_queue_max_connections{address="0.0.0.0",port="8080"} 511
 * A name is a gauge if its generation semaphore exists, else a semaphore if that
 * exists; a name that is neither yet, or cannot be read, has no series and a
 * comment line saying why. Needs no prom-client.
 */
export function metricsText(options: MetricsTextOptions = {}): string {
  const names = (options.names ?? []).map((n) => validate.semaphoreName(n, 'options.names'));
  const ports = options.ports ?? [];
  const lines: string[] = [];
  if (names.length > 0) {
    const samples: string[] = [];
    for (const name of names) {
      try {
        const sample = readNamed(name);
        if (sample === null) samples.push(comment(name, 'no such gauge or semaphore (yet)'));
        else samples.push(series('named_semaphore_value', { name, kind: sample.kind }, sample.value));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (typeof code !== 'string') throw error;
        samples.push(comment(name, `cannot read it: ${code}`));
      }
    }
    family(lines, 'named_semaphore_value', 'Value of a named semaphore, or total of a gauge over every process on this host', samples);
  }
  if (ports.length > 0) {
    const queues = readListenQueues(ports);
    const labels = (s: ListenQueueSample): Record<string, string | number> => ({ address: s.address, port: s.port });
    family(lines, LISTEN_QUEUE_METRIC, LISTEN_QUEUE_HELP, queues.map((s) => series(LISTEN_QUEUE_METRIC, labels(s), s.queued)));
    family(lines, LISTEN_BACKLOG_METRIC, LISTEN_BACKLOG_HELP, queues.map((s) => series(LISTEN_BACKLOG_METRIC, labels(s), s.backlog)));
  }
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

function readNamed(name: string): { kind: 'gauge' | 'semaphore'; value: number } | null {
  if (shares.isGauge(name)) {
    try {
      return { kind: 'gauge', value: Gauge.read(name) };
    } catch (error) {
      if (!hasCode(error, 'ENOENT')) throw error; // unlinked meanwhile
    }
  }
  let sem: NamedSemaphore;
  try {
    sem = new NamedSemaphore(name, { create: false });
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return null;
    throw error;
  }
  try {
    return { kind: 'semaphore', value: sem.value };
  } finally {
    sem.close();
  }
}

/**
 * An HTTP server (not yet listening) whose GET /metrics answers metricsText(options),
 * read at each request: the sidecar behind `named-semaphore serve-metrics`, or a
 * /metrics endpoint for a process that does not use prom-client.
 */
export function createMetricsServer(options: MetricsTextOptions = {}): http.Server {
  metricsText(options); // bad names and ports fail now, not at the first scrape
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, type: string, body: string, headers: http.OutgoingHttpHeaders = {}): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'text/plain', 'Method Not Allowed\n', { allow: 'GET, HEAD' });
    if (path === '/') return reply(200, 'text/plain', 'named-semaphore metrics: /metrics\n');
    if (path !== '/metrics') return reply(404, 'text/plain', 'Not Found: the metrics are at /metrics\n');
    let body: string;
    try {
      body = metricsText(options);
    } catch (error) {
      return reply(500, 'text/plain', `${(error as Error)?.message ?? String(error)}\n`);
    }
    reply(200, TEXT_CONTENT_TYPE, body);
  });
}
