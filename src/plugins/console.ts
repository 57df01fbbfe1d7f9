import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'
import fastifyStatic from '@fastify/static'

/** console/, found from src/plugins/ (tsx) or dist/src/plugins/ (compiled). */
const here = path.dirname(fileURLToPath(import.meta.url))
export const consoleRoot = [path.resolve(here, '..', '..', 'console'), path.resolve(here, '..', '..', '..', 'console')]
  .find(p => existsSync(path.join(p, 'index.html')))

/** The policy every response of the console carries: nothing inline, nothing from elsewhere. */
export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

/** Only these files of console/ are served (not its tsconfig.json or type declarations). */
const SERVED = /^\/(?:[\w-]+\/)*(?:[\w.-]+\.(?:html|js|css|svg|png|ico))?$/

/** The browser build of openapi-fetch (ESM, no imports), without its source-map comment. */
function loadOpenapiFetch (): Buffer | undefined {
  try {
    const file = fileURLToPath(import.meta.resolve('openapi-fetch'))
    return Buffer.from(readFileSync(file, 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'))
  } catch {
    return undefined
  }
}

/**
 * Serves the web console: the static files of console/ at `/console/` (index: index.html,
 * `/console` redirects there), and the spec-typed fetch client it uses at
 * `/console/vendor/openapi-fetch.js`. Every response carries a strict Content-Security-Policy
 * (no inline script or style, same-origin only), and every route is declared public like the
 * docs: the console's data comes from the API, which checks the tokens.
 */
export default fp(async (app) => {
  const client = loadOpenapiFetch()
  if (!consoleRoot || !client) {
    app.log.warn({ consoleRoot: consoleRoot ?? null, openapiFetch: Boolean(client) }, 'web console not served: console/ or openapi-fetch is missing')
    return
  }
  await app.register(async (ui) => {
    ui.addHook('onRoute', (route) => {
      route.config = { ...route.config, policy: { kind: 'public' }, operationId: 'console' }
    })
    ui.addHook('onSend', async (request, reply) => {
      reply.header('content-security-policy', CONSOLE_CSP)
      reply.header('referrer-policy', 'no-referrer')
      reply.header('x-frame-options', 'DENY')
      reply.header('cross-origin-opener-policy', 'same-origin')
      // Revalidate every time (ETag / Last-Modified): a deploy is picked up by the next load.
      if (reply.statusCode < 400) reply.header('cache-control', 'no-cache')
    })
    ui.get('/console/vendor/openapi-fetch.js', async (request, reply) => {
      return reply.type('text/javascript; charset=utf-8').send(client)
    })
    await ui.register(fastifyStatic, {
      root: consoleRoot,
      prefix: '/console',
      redirect: true,
      index: 'index.html',
      decorateReply: false,
      dotfiles: 'deny',
      allowedPath: (pathName) => SERVED.test(pathName)
    })
  })
}, { name: 'console' })
