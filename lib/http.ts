// named-semaphore/http: requests in flight across every process of a server
// (busyMiddleware), the accept queue of its listening sockets (listenQueue),
// and the access-log helpers that print `busy`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GaugeOrName } from './gauge';
import { busyHeaderOption, countRequest, gaugeGetter, type BusyOptions } from './counting';
import { sockDiagError } from './errors';
import { binding, type NativeListener } from './native';
import * as validate from './validate';

export type { BusyOptions, GaugeOrName };

declare module 'http' {
  interface IncomingMessage {
    /** Requests in flight over every process sharing the gauge, this one included (set by busyMiddleware). */
    busy?: number;
  }
}

type Next = (err?: unknown) => void;

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
