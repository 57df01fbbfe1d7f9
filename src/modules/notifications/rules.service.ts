import type { CreateNotificationRuleRequest, UpdateNotificationRuleRequest } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import type { ChangeFacts, NotificationRule, NotifyGate } from '../../domain/notification-delivery.js'
import { channelsFor } from '../../domain/notification-delivery.js'
import { newId } from '../../lib/ids.js'
import type { RuleRefusal, RulesRepository } from './rules.repository.js'

/** How long an instance keeps the enabled rules (the gate of the write paths). */
export const RULES_CACHE_MS = 5000

/**
 * The enabled rules, cached for the write paths (`NotifyGate`): read once, then at most every
 * RULES_CACHE_MS in the background while the cached ones keep answering (no write waits for a
 * refresh). A write of a rule in this process drops the cache: its next change sees the rule.
 * When the rules cannot be read, every change is marked: the worker decides with the rules it
 * reads itself, so nothing is lost to an outage of the cache.
 */
export function createRulesGate (load: () => Promise<NotificationRule[]>, ttlMs = RULES_CACHE_MS) {
  let snapshot: { at: number, rules: Promise<NotificationRule[]> } | undefined
  let refreshing = false
  const fresh = (): Promise<NotificationRule[]> => {
    const at = Date.now()
    const rules = load()
    snapshot = { at, rules }
    rules.catch(() => { if (snapshot?.rules === rules) snapshot = undefined })
    return rules
  }
  const current = (): Promise<NotificationRule[]> => {
    if (!snapshot) return fresh()
    if (Date.now() - snapshot.at >= ttlMs && !refreshing) {
      refreshing = true
      const kept = snapshot
      load().then(rules => { if (snapshot === kept) snapshot = { at: Date.now(), rules: Promise.resolve(rules) } }, () => undefined).finally(() => { refreshing = false })
    }
    return snapshot.rules
  }
  const gate: NotifyGate & { invalidate: () => void } = {
    async wants (facts: ChangeFacts): Promise<boolean> {
      try {
        return channelsFor(await current(), facts).length > 0
      } catch {
        return true
      }
    },
    invalidate: () => { snapshot = undefined }
  }
  return gate
}

const refusalError = (refusal: RuleRefusal): DomainError => refusal.reason === 'not_found'
  ? new DomainError('not_found', 'Notification rule not found.')
  : new DomainError('precondition_failed', 'The notification rule was changed by someone else (ETag mismatch).')

/** Rules CRUD: every channel a rule names must exist. */
export function createRulesService (repo: RulesRepository, channels: { existing: (ids: string[]) => Promise<Set<string>> }, onChange: () => void) {
  async function assertChannels (ids: string[]): Promise<void> {
    const found = await channels.existing(ids)
    const errors = ids.map((id, i) => ({ id, i })).filter(({ id }) => !found.has(id)).map(({ i }) => ({ path: `/body/channel_ids/${i}`, message: 'no such notification channel' }))
    if (errors.length) throw new DomainError('validation_failed', 'A channel of the rule does not exist.', { errors })
  }
  return {
    list: (q: { limit: number, cursor?: string | undefined }) => repo.list(q),
    get: (id: string) => repo.getLive(id),
    async create (input: CreateNotificationRuleRequest): Promise<NotificationRule> {
      await assertChannels(input.channel_ids)
      const now = new Date().toISOString()
      const rule = await repo.create({
        id: newId(),
        name: input.name.trim() || 'rule',
        enabled: input.enabled ?? true,
        channel_ids: input.channel_ids,
        kinds: input.kinds,
        min_severity: input.min_severity ?? null,
        sources: input.sources ?? [],
        account_ids: input.account_ids ?? [],
        version: 1,
        created_at: now,
        updated_at: now
      })
      onChange()
      return rule
    },
    async update (id: string, patch: UpdateNotificationRuleRequest, expectedVersion: number | undefined): Promise<NotificationRule> {
      if (patch.channel_ids) await assertChannels(patch.channel_ids)
      const outcome = await repo.update(id, { ...patch, name: patch.name?.trim() || undefined }, expectedVersion)
      if (!outcome.ok) throw refusalError(outcome.refusal)
      onChange()
      return outcome.value
    },
    async remove (id: string): Promise<void> {
      const outcome = await repo.remove(id)
      if (!outcome.ok) throw refusalError(outcome.refusal)
      onChange()
    }
  }
}

export type RulesService = ReturnType<typeof createRulesService>
