// named-semaphore/fastify: busyMiddleware as a Fastify plugin.
import type { FastifyPluginCallback, FastifyRequest } from 'fastify';
import { busyHeaderOption, countRequest, gaugeGetter, type CountedRequest, type GaugeOrName } from './http';
import * as validate from './validate';

declare module 'fastify' {
  interface FastifyRequest {
    /** Requests in flight over every process sharing the gauge, this one included (set by the busy plugin). */
    busy?: number;
  }
}

export interface BusyPluginOptions {
  /** A Gauge, or the name of one that each process opens once, on first use. */
  gauge: GaugeOrName;
  /** A response header that carries the request's `busy` (e.g. 'X-Busy'), for a proxy in front to log. */
  header?: string;
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
export const busyPlugin: FastifyPluginCallback<BusyPluginOptions> = (fastify, options, done) => {
  let gauge: ReturnType<typeof gaugeGetter>;
  let header: string | undefined;
  try {
    gauge = gaugeGetter(validate.options<BusyPluginOptions>(options).gauge, 'options.gauge');
    header = busyHeaderOption(options);
  } catch (error) {
    done(error as Error);
    return;
  }
  // countRequest acquires once, on the raw response's 'close' or its
  // socket's 'close'; these hooks make sure, in Fastify's own terms.
  const counts = new WeakMap<FastifyRequest, CountedRequest>();
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
  const finish = (request: FastifyRequest, next: () => void): void => {
    counts.get(request)?.finish();
    next();
  };
  fastify.addHook('onResponse', (request, _reply, next) => finish(request, next));
  fastify.addHook('onRequestAbort', finish);
  done();
};

Object.assign(busyPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'named-semaphore-busy',
});

export default busyPlugin;

