import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import type { AuditRecord } from '../../domain/audit.js'
import type { AuditService } from './audit.service.js'

export interface AuditModuleOptions {
  /** The service app.ts created (the audit plugin writes through the same one). */
  service: AuditService
  /** Seconds between outbox recoveries (0: off). */
  recoverIntervalSeconds?: number
}

/** The wire shape of a record (every field present; `suppressed` only on counted denials). */
const toDto = (r: AuditRecord) => ({
  id: r.id,
  at: r.at,
  action: r.action,
  outcome: r.outcome,
  actor: r.actor,
  target: r.target,
  ip: r.ip,
  user_agent: r.user_agent,
  request_id: r.request_id,
  change: r.change as Record<string, { from: never, to: never }> | null,
  reason: r.reason,
  ...(r.suppressed !== undefined ? { suppressed: r.suppressed } : {}),
  chain: r.chain,
  seq: r.seq,
  prev_hash: r.prev_hash,
  hash: r.hash
})

/** Reading the audit trail: list, verify, export (issue 20). Writing goes through the audit plugin. */
const auditModule: FastifyPluginAsyncTypebox<AuditModuleOptions> = async (app, { service, recoverIntervalSeconds = 60 }) => {
  app.route({
    ...routes.listAuditLog,
    handler: async (request) => {
      const { limit = 20, ...filter } = request.query
      const page = await service.list({ ...filter, limit })
      return { items: page.items.map(toDto), next_cursor: page.next_cursor }
    }
  })

  app.route({
    ...routes.verifyAuditLog,
    handler: async (request) => service.verify(request.query)
  })

  app.route({
    ...routes.exportAuditLog,
    handler: async (request, reply) => {
      const filter = request.query
      // The first page before the first byte: a bad filter is still a 400, not a broken stream.
      const first = await service.list({ ...filter, limit: 100 })
      async function * lines (): AsyncGenerator<string> {
        for (const r of first.items) yield `${JSON.stringify(toDto(r))}\n`
        let cursor = first.next_cursor
        while (cursor) {
          const page = await service.list({ ...filter, limit: 100, cursor })
          for (const r of page.items) yield `${JSON.stringify(toDto(r))}\n`
          cursor = page.next_cursor
        }
      }
      reply.type('application/x-ndjson').header('content-disposition', 'attachment; filename="audit-log.ndjson"')
      // The route's schema has no 200 body: the stream is sent as it is.
      return reply.send(Readable.from(lines()) as never)
    }
  })

  // Outbox entries whose request never committed nor abandoned them (docs/audit.md).
  if (recoverIntervalSeconds > 0) {
    let timer: NodeJS.Timeout | undefined
    let running: Promise<unknown> | undefined
    app.addHook('onReady', async () => {
      timer = setInterval(() => {
        if (running) return
        running = service.recover().catch((err: unknown) => { app.log.error({ err }, 'audit outbox recovery failed; the next run tries again') }).finally(() => { running = undefined })
      }, recoverIntervalSeconds * 1000)
      timer.unref()
    })
    app.addHook('onClose', async () => {
      clearInterval(timer)
      await running
    })
  }
}

export default auditModule
