import { DomainError } from '../../domain/errors.js'
import type { NotificationRule } from '../../domain/notification-delivery.js'
import { readIndexPage, writeOrExplain, type WriteOutcome } from '../../db/access.js'
import { where } from '../../db/expressions.js'
import type { CursorCodec, Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { NotificationItem } from './notifications.model.js'

/** Notification rules: items `rule` / `<rule id>` of the notifications table. */
const RULE = 'rule'

export type RuleFields = Partial<Pick<NotificationRule, 'name' | 'enabled' | 'channel_ids' | 'kinds' | 'min_severity' | 'sources' | 'account_ids'>>
export type RuleRefusal = { reason: 'not_found' } | { reason: 'stale' }

const toRule = (item: NotificationItem): NotificationRule => ({
  id: item.sk,
  name: item.name ?? '',
  enabled: item.enabled ?? false,
  channel_ids: item.channel_ids ?? [],
  kinds: (item.kinds ?? []) as NotificationRule['kinds'],
  min_severity: (item.min_severity ?? null) as NotificationRule['min_severity'],
  sources: (item.sources ?? []) as NotificationRule['sources'],
  account_ids: item.account_ids ?? [],
  version: item.version ?? 1,
  created_at: item.created_at ?? '',
  updated_at: item.updated_at ?? ''
})

interface Ctx { raw: RawClient, cursors: CursorCodec, table: string }

const key = (id: string) => ({ pk: RULE, sk: id })

async function getLive (ctx: Ctx, id: string): Promise<NotificationRule> {
  const item = await ctx.raw.getItem<NotificationItem>(ctx.table, key(id))
  if (item?.kind !== RULE) throw new DomainError('not_found', 'Notification rule not found.')
  return toRule(item)
}

async function create (ctx: Ctx, rule: NotificationRule): Promise<NotificationRule> {
  const { id, min_severity: minSeverity, ...rest } = rule
  await ctx.raw.putItem(ctx.table, { ...key(id), kind: RULE, ...rest, ...(minSeverity ? { min_severity: minSeverity } : {}) }, { condition: where.notExists('pk') })
  return rule
}

async function update (ctx: Ctx, id: string, fields: RuleFields, expectedVersion: number | undefined): Promise<WriteOutcome<NotificationRule, RuleRefusal>> {
  const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
  const remove: string[] = []
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    if (v === null) remove.push(k)
    else set[k] = v
  }
  return writeOrExplain(async () => {
    const updated = await ctx.raw.updateItem<NotificationItem>(ctx.table, key(id), { set, add: { version: 1 }, remove }, {
      condition: where.and(where.exists('pk'), expectedVersion !== undefined && where.eq('version', expectedVersion)),
      returnValues: 'ALL_NEW'
    })
    return toRule(updated!)
  }, async (): Promise<RuleRefusal> => {
    const current = await ctx.raw.getItem<NotificationItem>(ctx.table, key(id))
    return current ? { reason: 'stale' } : { reason: 'not_found' }
  })
}

function remove (ctx: Ctx, id: string): Promise<WriteOutcome<void, RuleRefusal>> {
  return writeOrExplain(
    () => ctx.raw.deleteItem(ctx.table, key(id), { condition: where.exists('pk') }),
    async (): Promise<RuleRefusal> => ({ reason: 'not_found' })
  )
}

function list (ctx: Ctx, q: { limit: number, cursor?: string | undefined }): Promise<Page<NotificationRule>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.table,
    key: { partition: ['pk', RULE] },
    map: toRule,
    cursorScope: { list: 'notification-rules' },
    limit: q.limit,
    cursor: q.cursor
  })
}

/** Every enabled rule (the worker, the writers' cache): one partition, read whole. */
async function enabled (ctx: Ctx): Promise<NotificationRule[]> {
  const out: NotificationRule[] = []
  let startKey: Record<string, unknown> | undefined
  do {
    const page = await ctx.raw.queryPage<NotificationItem>({ table: ctx.table, key: { partition: ['pk', RULE] }, filter: where.eq('enabled', true), startKey })
    out.push(...page.items.map(toRule))
    startKey = page.lastKey
  } while (startKey)
  return out
}

export function createRulesRepository (table: string, cursors: CursorCodec, raw: RawClient) {
  const ctx: Ctx = { raw, cursors, table }
  return {
    getLive: (id: string) => getLive(ctx, id),
    create: (rule: NotificationRule) => create(ctx, rule),
    update: (id: string, fields: RuleFields, expectedVersion: number | undefined) => update(ctx, id, fields, expectedVersion),
    remove: (id: string) => remove(ctx, id),
    list: (q: { limit: number, cursor?: string | undefined }) => list(ctx, q),
    enabled: () => enabled(ctx)
  }
}

export type RulesRepository = ReturnType<typeof createRulesRepository>
