// named-semaphore/fastify: busyMiddleware as a Fastify plugin.
//
// fastify is an optional peer dependency, so these types must compile without
// it: the plugin takes the instance as `unknown` (any Fastify version's
// instance fits) and uses it through the few members it needs.
// module.exports is the plugin itself (with .busyPlugin and .default), as
// Fastify's own plugins do, so a default import works from ESM and CommonJS.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GaugeOrName } from './gauge';
import { busyHeaderOption, countRequest, gaugeGetter, type CountedRequest } from './counting';
import * as validate from './validate';
import './http'; // its augmentation types request.raw.busy

// Types request.busy where fastify is installed; where it is not, tsc passes
// over this augmentation in the emitted .d.ts. (Here no import brings fastify
// in, hence TS2664.)
// @ts-expect-error TS2664
declare module 'fastify' {
  interface FastifyRequest {
    /** Requests in flight over every process sharing the gauge, this one included (set by the busy plugin). */
    busy?: number;
  }
}

// The members of a Fastify instance, request and reply that the plugin uses.
interface Request {
  raw: IncomingMessage;
  busy?: number;
}
interface Reply {
  raw: ServerResponse;
  header(name: string, value: unknown): unknown;
}
type Hook = (request: Request, reply: Reply, next: () => void) => void;
interface Instance {
  decorateRequest(name: string, value: unknown): unknown;
  addHook(name: 'onRequest' | 'onResponse', hook: Hook): unknown;
  addHook(name: 'onRequestAbort', hook: (request: Request, next: () => void) => void): unknown;
}

/**
 * Counts each request in the gauge from its arrival (onRequest) until its
 * response is sent (onResponse) or the client goes away first
 * (onRequestAbort, or its connection closing), exactly once. Sets
 * `request.busy`, and `request.raw.busy` for loggers of the raw request
 * (morgan, pino-http), to the total in flight over every process.
 *
 * `fastify.register(busyPlugin, { gauge: '/busy', header: 'X-Busy' })` (header optional). Its hooks apply to the
 * whole instance it is registered on, not only to the plugin's own context.
 */
function busyPlugin(instance: unknown, options: busyPlugin.BusyPluginOptions, done: (err?: Error) => void): void {
  const fastify = instance as Instance;
  let gauge: ReturnType<typeof gaugeGetter>;
  let header: string | undefined;
  try {
    gauge = gaugeGetter(validate.options<busyPlugin.BusyPluginOptions>(options).gauge, 'options.gauge');
    header = busyHeaderOption(options);
  } catch (error) {
    done(error as Error);
    return;
  }
  // countRequest acquires once, on the raw response's 'close' or its
  // socket's 'close'; these hooks make sure, in Fastify's own terms.
  const counts = new WeakMap<Request, CountedRequest>();
  fastify.decorateRequest('busy', undefined);
  fastify.addHook('onRequest', (request, reply, next) => {
    const counted = countRequest(gauge, request.raw, reply.raw); // null: not counted, never a throw
    if (counted !== null) {
      counts.set(request, counted);
      request.busy = counted.busy;
      request.raw.busy = counted.busy;
      if (header !== undefined) reply.header(header, counted.busy);
    }
    next();
  });
  const finish = (request: Request, next: () => void): void => {
    counts.get(request)?.finish();
    next();
  };
  fastify.addHook('onResponse', (request, _reply, next) => finish(request, next));
  fastify.addHook('onRequestAbort', finish);
  done();
}

// eslint-disable-next-line @typescript-eslint/no-namespace
declare namespace busyPlugin {
  export interface BusyPluginOptions {
    /** A Gauge, or the name of one that each process opens once, on first use. */
    gauge: GaugeOrName;
    /** A response header that carries the request's `busy` (e.g. 'X-Busy'), for a proxy in front to log. */
    header?: string;
  }
  export type { GaugeOrName };
  /** The plugin itself, for `const { busyPlugin } = require('named-semaphore/fastify')`. */
  export const busyPlugin: typeof import('./fastify');
  export { busyPlugin as default };
}

// Spelled out, as Node's ESM loader finds a CommonJS module's named exports
// in its source text (export = then makes busyPlugin the module itself).
exports.busyPlugin = busyPlugin;
Object.assign(busyPlugin, {
  busyPlugin,
  default: busyPlugin,
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'named-semaphore-busy',
});

export = busyPlugin;
