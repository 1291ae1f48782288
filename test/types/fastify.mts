// With fastify installed: the default import registers with the options
// typed, and request.busy is typed (test/pack.sh compiles it as ESM).
import Fastify from 'fastify';
import busyPlugin from 'named-semaphore/fastify';

const app = Fastify();
await app.register(busyPlugin, { gauge: '/busy' });
// @ts-expect-error: the gauge option is required
await app.register(busyPlugin, {});
app.get('/', async (request) => {
  const busy: number | undefined = request.busy;
  const raw: number | undefined = request.raw.busy;
  return { busy, raw };
});
