// named-semaphore/http: requests in flight across every process of a server
// (busyMiddleware), the accept queue of its listening sockets (listenQueue),
// and the access-log helpers that print `busy`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Gauge, type GaugeOrName } from './gauge';

export type { GaugeOrName };
import { invalidArgType, invalidArgValue, sockDiagError, warnOnce } from './errors';
import { binding, type NativeListener } from './native';
import * as shares from './shares';
import * as validate from './validate';

declare module 'http' {
  interface IncomingMessage {
    /** Requests in flight over every process sharing the gauge, this one included (set by busyMiddleware). */
    busy?: number;
  }
}


// One Gauge per name per process, opened on first use and kept open.
const opened = new Map<string, Gauge>();

/**
 * Checks `gaugeOrName` now and returns a function that gives its Gauge. A name
 * is opened on the first call (one Gauge per name per process), again if it
 * was closed since.
 * @internal
 */
export function gaugeGetter(gaugeOrName: unknown, arg = 'gauge'): () => Gauge {
  if (gaugeOrName instanceof Gauge) return () => gaugeOrName;
  if (typeof gaugeOrName !== 'string') throw invalidArgType(arg, 'a Gauge or a string', gaugeOrName);
  const name = validate.semaphoreName(gaugeOrName, arg, shares.SHARE_SUFFIX_BYTES);
  return () => {
    let gauge = opened.get(name);
    if (gauge === undefined || gauge.closed) {
      gauge = new Gauge(name);
      opened.set(name, gauge);
    }
    return gauge;
  };
}

// Where a request's count lives: on its response (whose 'close' ends it), and
// on its connection, given back when that closes. The response of a
// pipelined request still queued behind another one gets neither 'finish'
// nor 'close' when the connection dies, so only the socket tells. (A
// request's own 'close' says nothing: it fires once its body is read.)
// Per request, one object linked into two lists under symbol properties,
// with shared listeners: a closure, a Set or a WeakMap per request, and even
// an array, cost more than the count itself. A response may be counted in
// several gauges (one busyMiddleware per app, another per route).
const kCounted = Symbol('named-semaphore.counted');
const kPending = Symbol('named-semaphore.pending');
type CountedResponse = ServerResponse & { [kCounted]?: CountedRequest };
// On a socket: undefined until its 'close' listener is added, then the list's
// head, or null when it is empty.
type CountedSocket = Socket & { [kPending]?: CountedRequest | null };

/**
 * One request counted in a gauge until `finish()`, which acquires it back
 * exactly once. `busy` is the total in flight when it was counted, this
 * request included.
 * @internal
 */
export class CountedRequest {
  #gauge: Gauge | null; // null once finished
  readonly #socket: CountedSocket | null;
  // The other counts of the same response (a list that only grows).
  #nextOnResponse: CountedRequest | undefined;
  // The unfinished counts of the same connection (doubly linked: leaving is
  // O(1) and allocates nothing).
  #prevOnSocket: CountedRequest | undefined;
  #nextOnSocket: CountedRequest | undefined;

  constructor(
    gauge: Gauge,
    readonly busy: number,
    res: CountedResponse,
    socket: CountedSocket | null,
  ) {
    this.#gauge = gauge;
    this.#socket = socket;
    // A response always ends with 'close': right after the response went
    // out, or when the connection closed first (client abort, socket error
    // or timeout, a destroyed response). One plain listener, never removed
    // (it goes with the response), is the cheapest way to hear it.
    this.#nextOnResponse = res[kCounted];
    if (this.#nextOnResponse === undefined) res.on('close', CountedRequest.#responseClosed);
    res[kCounted] = this;
    if (socket !== null) {
      const head = socket[kPending];
      if (head === undefined) socket.once('close', CountedRequest.#socketClosed);
      else if (head !== null) head.#prevOnSocket = this;
      this.#nextOnSocket = head ?? undefined;
      socket[kPending] = this;
    }
  }

  finish(): void {
    const gauge = this.#gauge;
    if (gauge === null) return;
    this.#gauge = null;
    const prev = this.#prevOnSocket;
    const next = this.#nextOnSocket;
    if (prev !== undefined) prev.#nextOnSocket = next;
    else if (this.#socket !== null && this.#socket[kPending] === this) this.#socket[kPending] = next ?? null;
    if (next !== undefined) next.#prevOnSocket = prev;
    this.#prevOnSocket = this.#nextOnSocket = undefined;
    // A gauge closed meanwhile (by its owner, or at exit) gave its share back already.
    try {
      if (!gauge.closed) gauge.acquire();
    } catch (error) {
      gaugeFailed(error); // from an event listener: a throw would end the process
    }
  }

  static #responseClosed(this: CountedResponse): void {
    for (let c = this[kCounted]; c !== undefined; c = c.#nextOnResponse) c.finish();
  }

  static #socketClosed(this: CountedSocket): void {
    let c = this[kPending];
    this[kPending] = null;
    while (c != null) {
      const next = c.#nextOnSocket;
      c.finish();
      c = next;
    }
  }
}

/**
 * Counts a request in the gauge until its response ends or its connection
 * closes, or the result's `finish()` is called, exactly once. Never throws:
 * null (and a warning) if the gauge fails.
 * @internal
 */
export function countRequest(gaugeOf: Gauge | (() => Gauge), req: IncomingMessage, res: ServerResponse): CountedRequest | null {
  const socket = (req.socket ?? null) as CountedSocket | null; // a mock request may have none
  let gauge: Gauge, busy: number;
  try {
    gauge = typeof gaugeOf === 'function' ? gaugeOf() : gaugeOf;
    busy = gauge.releaseAndRead();
  } catch (error) {
    gaugeFailed(error);
    return null; // served, not counted
  }
  const counted = new CountedRequest(gauge, busy, res, socket);
  // Counted late (after an earlier middleware waited): it may be over already.
  if (res.writableFinished || res.closed || socket?.destroyed === true) counted.finish();
  return counted;
}

/** Counting never takes a server down: a gauge that fails is a warning, once per process. */
function gaugeFailed(error: unknown): void {
  warnOnce('NAMED_SEMAPHORE_COUNT_FAILED', `a request was not counted: ${(error as Error)?.message ?? String(error)}`);
}

type Next = (err?: unknown) => void;

export interface BusyOptions {
  /**
   * A response header that carries the request's `busy` (e.g. 'X-Busy'), for a
   * proxy in front to log: nginx's `$upstream_http_x_busy`.
   */
  header?: string;
}

// RFC 9110's token: what Node's setHeader accepts as a header name.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks the `header` option; undefined when none is wanted. @internal */
export function busyHeaderOption(options: unknown, arg = 'options'): string | undefined {
  const header = validate.options<BusyOptions>(options, arg).header;
  if (header === undefined) return undefined;
  if (typeof header !== 'string') throw invalidArgType(`${arg}.header`, 'of type string', header);
  if (!HEADER_NAME.test(header)) throw invalidArgValue(`${arg}.header`, header, 'must be a valid HTTP header name');
  return header;
}

/**
 * Middleware that counts each request in the gauge from its arrival until its
 * response ends, or its connection closes, whichever comes first; exactly
 * once. Sets `req.busy` to the total in flight over every process, this
 * request included, and with `{ header: 'X-Busy' }` the response header too.
 *
 * Express or Connect: `app.use(busyMiddleware('/busy'))`. Plain node:http:
 * `busyMiddleware('/busy')(req, res)` first thing in the request handler.
 * A name opens one Gauge per process, on the first request.
 */
export function busyMiddleware(
  gaugeOrName: GaugeOrName,
  options?: BusyOptions,
): (req: IncomingMessage, res: ServerResponse, next?: Next) => void {
  const gauge = gaugeGetter(gaugeOrName, 'gaugeOrName');
  const header = busyHeaderOption(options);
  return function busy(req, res, next) {
    req.busy = countRequest(gauge, req, res)?.busy;
    if (header !== undefined && req.busy !== undefined && !res.headersSent) res.setHeader(header, req.busy);
    if (typeof next === 'function') next();
  };
}

/** A morgan token: `morgan.token('busy', busyToken)`, then `:busy` in a format. '-' when not counted. */
export function busyToken(req: IncomingMessage): string | undefined {
  return req.busy === undefined ? undefined : String(req.busy);
}

/** The same as busyToken. */
export const morganBusyToken = busyToken;

/** pino-http: `pinoHttp({ customProps: pinoBusyProps })` adds `busy` to each request's log lines. */
export function pinoBusyProps(req: IncomingMessage): { busy: number | undefined } {
  return { busy: req.busy };
}

/** A TCP listening socket on this host and its accept queue. */
export type Listener = NativeListener;

/**
 * The TCP sockets listening on `port` in this network namespace (IPv4 and
 * IPv6), each with `queued`, the connections waiting to be accepted, and
 * `backlog`, the accept queue's limit. Read from the kernel (sock_diag), as
 * `ss -ltn` does. Empty when nothing listens on the port.
 */
export function listenQueue(port: number): Listener[] {
  validate.wholeNumber(port, 'port', 1, 65535);
  const listeners = binding.listenQueue(port);
  if (typeof listeners === 'number') throw sockDiagError(listeners, port);
  return listeners;
}
