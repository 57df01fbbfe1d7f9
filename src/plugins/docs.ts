import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { loadSpecDocument } from '../spec-document.js'

/**
 * Serves the contract itself: `/docs` (interactive UI) and `/docs/json` (the YAML file as
 * JSON). Static mode: the served spec is docs/api-specification.yaml, not a re-description;
 * parsed once per content (src/spec-document.ts caches the parse), not at every start.
 */
export default fp(async (app) => {
  await app.register(swagger, {
    mode: 'static',
    specification: { document: await loadSpecDocument() as never }
  })
  await app.register(async (docs) => {
    // The documentation is public; declare it like every other route (no URL exemptions).
    docs.addHook('onRoute', (route) => {
      route.config = { ...route.config, policy: { kind: 'public' }, operationId: 'docs' }
    })
    await docs.register(swaggerUi, { routePrefix: '/docs', staticCSP: true })
  })
}, { name: 'docs' })
