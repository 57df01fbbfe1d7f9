import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { EventBridgeEnvelope as EnvelopeSchema, IngestBatch as BatchSchema, type EventBridgeEnvelope, type IngestResult } from '../../../openapi/generated/schemas.js'
import { DomainError, type ErrorCode } from '../../domain/errors.js'
import { toEventDto, toEventListItem } from '../../domain/events.js'
import { toTaskDto } from '../../domain/tasks.js'
import { etagOf } from '../../lib/etag.js'
import { noContent } from '../../lib/http.js'
import { compileBodyCheck } from '../../plugins/validation.js'
import { STATUS_BY_CODE } from '../../plugins/errors.js'
import { createEventsService } from './events.service.js'
import type { MonitoringSettings } from '../../domain/monitoring-settings.js'
import type { UserLookup } from '../../domain/users.js'
import type { EventsRepository } from './events.repository.js'
import type { TaskStore } from './events.service.js'
import type { IngestionHealthRepository, IngestionRecord } from './ingestion-health.repository.js'

/** One EventBridge event can be 256 KB; a batch of them needs more than the default limit. */
const INGEST_BODY_LIMIT = 1024 * 1024

const checkEnvelope = compileBodyCheck(EnvelopeSchema)
const checkBatch = compileBodyCheck(BatchSchema)

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const detailTypeOf = (envelope: unknown): string | null => isObject(envelope) && typeof envelope['detail-type'] === 'string' ? envelope['detail-type'] : null

/** A batch entry that does not match `EventBridgeEnvelope`: its own `rejected` result. */
function rejectedEntry (index: number, entry: Record<string, unknown>, errors: Array<{ path: string, message: string }>): IngestResult {
  const id = typeof entry.id === 'string' && entry.id.length >= 1 && entry.id.length <= 128 ? entry.id : null
  const detail = errors.slice(0, 5).map(e => `${e.path.replace(/^\/body/, '') || '/'} ${e.message}`).join('; ')
  return { index, item: 0, envelope_id: id, event_id: null, dedup_key: null, action: 'rejected', reason: null, error: { status: STATUS_BY_CODE.validation_failed, code: 'validation_failed', detail: `The envelope is not valid: ${detail}`.slice(0, 2000) } }
}

/** The module's repositories, and the ports to other modules it uses (given by app.ts). */
export interface EventsModuleOptions {
  events: EventsRepository
  ingestionHealth: IngestionHealthRepository
  tasks: TaskStore
  users: UserLookup
  settings: { getCached: () => Promise<MonitoringSettings> }
}

const eventsModule: FastifyPluginAsyncTypebox<EventsModuleOptions> = async (app, { events, tasks, users, settings, ingestionHealth }) => {
  const service = createEventsService(events, tasks, users, app.stats)

  /** Counts a delivery's results in its account's ingestion health; never fails the delivery. */
  async function recordHealth (account: string, at: number, records: IngestionRecord[]): Promise<void> {
    try {
      await ingestionHealth.record(account, at, records)
    } catch (err) {
      app.log.warn({ err, aws_account: account }, 'ingestion health counters not updated')
    }
  }

  // Ingestion has its own JSON parser (this plugin is encapsulated): AWS's `detail` is data, and
  // keys such as `__proto__` (a legal tag key) are kept as own properties, never refused.
  // JSON.parse defines own properties and never touches a prototype.
  await app.register(async (ingest) => {
    ingest.removeContentTypeParser('application/json')
    ingest.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: INGEST_BODY_LIMIT }, (_request, body, done) => {
      const text = body as string
      if (text.trim() === '') return done(null, undefined)
      try {
        done(null, JSON.parse(text))
      } catch (err) {
        done(Object.assign(new Error(`Body is not valid JSON: ${(err as Error).message}`), { statusCode: 400, code: 'FST_ERR_CTP_INVALID_JSON_BODY' }), undefined)
      }
    })

    // The body is checked against one schema, chosen by its shape (a batch has `events`), so an
    // invalid single envelope is told its own errors, not those of both alternatives.
    const { body: _union, ...schema } = routes.ingestEvents.schema
    ingest.route({
      ...routes.ingestEvents,
      schema,
      config: { ...routes.ingestEvents.config, rateLimitClass: 'ingest' },
      bodyLimit: INGEST_BODY_LIMIT,
      handler: async (request, reply) => {
        const receivedAt = Date.now()
        const account = request.awsAccount!
        const body: unknown = request.body
        if (!isObject(body)) {
          throw new DomainError('validation_failed', 'The body must be one EventBridge envelope (a JSON object) or { "events": [...] }.', { errors: [{ path: '/body', message: 'must be object' }] })
        }
        const batch = Object.hasOwn(body, 'events')
        const checked = (batch ? checkBatch : checkEnvelope)(body)
        if (!checked.valid) {
          if (!batch) {
            await recordHealth(account.account_id, receivedAt, [{ detailType: detailTypeOf(body), result: rejectedEntry(0, body, checked.errors) }])
          }
          throw new DomainError('validation_failed', batch ? 'The batch is not valid.' : 'The envelope is not valid.', { errors: checked.errors })
        }
        const bodies = batch ? body.events as Array<Record<string, unknown>> : [body]
        const entries = bodies.map((entry, index) => {
          const result = checkEnvelope(entry)
          return result.valid ? entry as unknown as EventBridgeEnvelope : rejectedEntry(index, entry, result.errors)
        })
        const current = await settings.getCached()
        const results = await service.ingestBatch(account, entries, current, { receivedAt })
        await recordHealth(account.account_id, receivedAt, results.map(result => ({ detailType: detailTypeOf(bodies[result.index]), result })))
        if (!batch) {
          const refused = results.find(r => r.action === 'rejected' && r.error)
          if (refused?.error) {
            // 429: the same envelope is in flight elsewhere; EventBridge retries a 429 later.
            throw new DomainError(refused.error.code as ErrorCode, refused.error.detail, refused.error.code === 'rate_limited' ? { retryAfterSeconds: 5 } : {})
          }
        }
        const count = (...actions: Array<IngestResult['action']>) => results.filter(r => actions.includes(r.action)).length
        return reply.code(202).send({
          accepted: count('created', 'updated', 'resolved', 'ignored'),
          duplicates: count('duplicate'),
          rejected: count('rejected'),
          results
        })
      }
    })
  })

  app.route({
    ...routes.listEvents,
    handler: async (request) => {
      const { limit = 20, time_field: timeField = 'occurred_at', ...filters } = request.query
      const page = await service.list({ ...filters, limit, time_field: timeField })
      return { items: page.items.map(toEventListItem), next_cursor: page.next_cursor }
    }
  })

  app.route({
    ...routes.getEvent,
    handler: async (request) => toEventDto(await service.get(request.params.id))
  })

  app.route({
    ...routes.deleteEvent,
    handler: async (request, reply) => {
      await service.remove(request.actor!, request.params.id)
      return noContent(reply)
    }
  })

  app.route({
    ...routes.createTaskFromEvent,
    handler: async (request, reply) => {
      const task = await service.createTask(request.actor!, request.params.id, request.body)
      reply.code(201).header('etag', etagOf(task.version)).header('location', `/api/tasks/${task.id}`)
      return toTaskDto(task)
    }
  })
}

export default eventsModule
