// Counting requests in a gauge: what busyMiddleware (./http) and busyPlugin
// (./fastify) share. Internal: no public entry point exports it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Gauge } from './gauge';
import { invalidArgType, invalidArgValue, warnOnce } from './errors';
import * as shares from './shares';
import * as validate from './validate';

// One Gauge per name per process, opened on first use and kept open.
const opened = new Map<string, Gauge>();

/**
 * Checks `gaugeOrName` now and returns a function that gives its Gauge. A name
 * is opened on the first call (one Gauge per name per process), again if it
 * was closed since.
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

export interface BusyOptions {
  /**
   * A response header that carries the request's `busy` (e.g. 'X-Busy'), for a
   * proxy in front to log: nginx's `$upstream_http_x_busy`.
   */
  header?: string;
}

// RFC 9110's token: what Node's setHeader accepts as a header name.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Checks busyMiddleware's and the fastify plugin's `header` option; undefined when none is wanted. */
export function busyHeaderOption(options: unknown, arg = 'options'): string | undefined {
  const header = validate.options<BusyOptions>(options, arg).header;
  if (header === undefined) return undefined;
  if (typeof header !== 'string') throw invalidArgType(`${arg}.header`, 'of type string', header);
  if (!HEADER_NAME.test(header)) throw invalidArgValue(`${arg}.header`, header, 'must be a valid HTTP header name');
  return header;
}
