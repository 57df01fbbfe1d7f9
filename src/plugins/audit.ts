import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import type { AuditAction, AuditActor, AuditChange, AuditEntry, AuditOutcome, AuditTarget, PendingAudit } from '../domain/audit.js'

/** What the audit module's service does for this plugin (app.ts passes it). */
export interface AuditWriter {
  recordBestEffort: (entry: AuditEntry) => Promise<void>
  begin: (entry: AuditEntry) => Promise<PendingAudit>
  commit: (pending: PendingAudit, patch?: Partial<Pick<AuditEntry, 'target' | 'change' | 'action' | 'outcome' | 'reason'>>) => Promise<unknown>
  abandon: (pending: PendingAudit) => Promise<void>
}

/** What a module states about an action; the plugin adds who, from where and which request. */
export interface AuditFacts {
  action: AuditAction
  outcome?: AuditOutcome
  target?: AuditTarget | null
  change?: AuditChange | null
  reason?: string | null
  /** Who acted, when the request does not say (a failed login: the e-mail tried). */
  actor?: AuditActor
  suppressed?: number
}

/** What the result of a guarded change tells the record. */
export interface GuardedResult<T> {
  result: T
  target?: AuditTarget | null
  change?: AuditChange | null
  action?: AuditAction
}

export interface AuditPort {
  /**
   * Best effort (authentication events, logout): written before the response, a failure is
   * logged and counted, never the request's failure.
   */
  note: (request: FastifyRequest, facts: AuditFacts) => Promise<void>
  /**
   * A change that must not go unrecorded (admin changes, password changes): fail closed. The
   * entry goes to the outbox first (refused with 503 when it cannot), then `change` runs; its
   * record is appended when it succeeds, its entry dropped when it fails (docs/audit.md).
   */
  guard: <T>(request: FastifyRequest, facts: AuditFacts, change: () => Promise<GuardedResult<T>>) => Promise<T>
  /** A 403 of an admin-only operation: at most one record per actor and operation per window, the rest counted. */
  denied: (request: FastifyRequest) => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The audit trail (issue 20): modules record through it, never through the audit module. */
    audit: AuditPort
  }
}

export interface AuditPluginOptions {
  writer: AuditWriter
  /** Window of the denial records (ms): one record per actor and operation per window. */
  deniedWindowMs?: number
}

/** Actor and operation pairs whose denials are remembered at most (the oldest are dropped first). */
const MAX_TRACKED_DENIALS = 10_000

/** Who made the request: the signed-in user, the ingestion key's account, or nobody known. */
export function actorOf (request: FastifyRequest): AuditActor {
  if (request.actor) return { type: 'user', id: request.actor.id, role: request.actor.role, label: request.currentUser?.email ?? null }
  if (request.awsAccount) return { type: 'api_key', id: request.awsAccount.id, role: null, label: request.awsAccount.account_id }
  return { type: 'anonymous', id: null, role: null, label: null }
}

export default fp<AuditPluginOptions>(async (app, opts) => {
  const windowMs = opts.deniedWindowMs ?? 60_000
  const denials = new Map<string, { until: number, suppressed: number }>()

  const entryOf = (request: FastifyRequest, facts: AuditFacts): AuditEntry => ({
    action: facts.action,
    outcome: facts.outcome ?? 'success',
    actor: facts.actor ?? actorOf(request),
    target: facts.target ?? null,
    ip: request.ip ?? null,
    user_agent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'].slice(0, 512) : null,
    request_id: String(request.id),
    change: facts.change ?? null,
    reason: facts.reason ?? null,
    ...(facts.suppressed !== undefined ? { suppressed: facts.suppressed } : {})
  })

  const port: AuditPort = {
    note: (request, facts) => opts.writer.recordBestEffort(entryOf(request, facts)),
    async guard (request, facts, change) {
      const pending = await opts.writer.begin(entryOf(request, facts))
      let done
      try {
        done = await change()
      } catch (err) {
        await opts.writer.abandon(pending)
        throw err
      }
      await opts.writer.commit(pending, {
        ...(done.target !== undefined ? { target: done.target } : {}),
        ...(done.change !== undefined ? { change: done.change } : {}),
        ...(done.action ? { action: done.action } : {})
      })
      return done.result
    },
    async denied (request) {
      const operation = request.routeOptions.config.operationId ?? `${request.method} ${request.routeOptions.url ?? ''}`
      const key = `${request.actor?.id ?? request.ip}\n${operation}`
      const now = Date.now()
      const seen = denials.get(key)
      if (seen && seen.until > now) {
        seen.suppressed++
        return
      }
      denials.delete(key)
      if (denials.size >= MAX_TRACKED_DENIALS) {
        for (const [k, v] of denials) if (v.until <= now || denials.size >= MAX_TRACKED_DENIALS) denials.delete(k)
      }
      denials.set(key, { until: now + windowMs, suppressed: 0 })
      await port.note(request, {
        action: 'access.denied',
        outcome: 'denied',
        target: { type: 'operation', id: operation },
        reason: 'forbidden',
        ...(seen?.suppressed ? { suppressed: seen.suppressed } : {})
      })
    }
  }
  app.decorate('audit', port)
}, { name: 'audit', dependencies: ['errors'] })
