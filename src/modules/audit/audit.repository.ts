import { actorKey, dayOf, linkRecord, targetKey, type AuditEntry, type AuditRecord } from '../../domain/audit.js'
import { isConditionFailed } from '../../db/errors.js'
import { readIndexPage } from '../../db/access.js'
import { where, type Condition, type KeyCondition } from '../../db/expressions.js'
import type { CursorCodec, Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import { idCeil, idFloor } from '../../lib/ids.js'

/** A stored record (see audit.model.ts): the record's fields plus its keys and index attributes. */
interface RecordItem extends Omit<AuditRecord, 'chain' | 'change'> {
  pk: string
  sk: string
  kind: 'record'
  day: string
  actor_key?: string
  target_key?: string
  target_type?: string
  /** JSON of the change (any JSON value survives the store unchanged). */
  change: string | null
  ttl: number
}

interface OutboxItem { pk: 'outbox', sk: string, kind: 'outbox', id: string, at: string, entry: string, ttl: number }

export interface AuditFilter {
  actor?: string | undefined
  action?: string | undefined
  target_type?: string | undefined
  target_id?: string | undefined
  outcome?: string | undefined
  /** Inclusive (`at >= from`). */
  from?: string | undefined
  /** Exclusive (`at < to`). */
  to?: string | undefined
}

const seqKey = (seq: number): string => String(seq).padStart(10, '0')

const toRecord = (item: RecordItem): AuditRecord => ({
  id: item.id,
  at: item.at,
  chain: item.pk,
  seq: item.seq,
  action: item.action,
  outcome: item.outcome,
  actor: item.actor,
  target: item.target ?? null,
  ip: item.ip ?? null,
  user_agent: item.user_agent ?? null,
  request_id: item.request_id ?? null,
  change: item.change ? JSON.parse(item.change) as AuditRecord['change'] : null,
  reason: item.reason ?? null,
  ...(item.suppressed !== undefined && item.suppressed !== null ? { suppressed: item.suppressed } : {}),
  prev_hash: item.prev_hash,
  hash: item.hash
})

interface Context {
  raw: RawClient
  cursors: CursorCodec
  table: string
  retentionDays: number
  /** The last record this process knows of per chain (a hint: a stale one costs a retry, never a fork). */
  heads: Map<string, { seq: number, hash: string }>
  /** Days this process has registered in the day list (one idempotent put per day and process). */
  days: Set<string>
}

/** The TTL of a record of `day`: the end of that day plus the retention (a day's chains expire together). */
const ttlOf = (ctx: Context, day: string): number => Math.floor(Date.parse(`${day}T00:00:00.000Z`) / 1000) + 86_400 * (ctx.retentionDays + 1)

/** The last record of a chain, strongly consistent. */
async function head (ctx: Context, chain: string): Promise<{ seq: number, hash: string } | null> {
  const res = await ctx.raw.queryPage<RecordItem>({ table: ctx.table, key: { partition: ['pk', chain] }, forward: false, limit: 1, consistent: true, attributes: ['seq', 'hash'] })
  const last = res.items[0]
  return last ? { seq: last.seq, hash: last.hash } : null
}

/** Races for a chain position one writer may lose before it gives up (a writer that loses this often means far too few shards). */
const MAX_APPEND_ATTEMPTS = 100

/**
 * Appends a record to `chain`: at the position after the chain's last record, by a put that
 * only succeeds when that position is free. Two writers that race for a position: one wins,
 * the other re-reads the head and takes the next one. A chain cannot fork (one item per
 * position) and cannot have a hole left by a half-done write (the record is the one write).
 */
async function append (ctx: Context, chain: string, entry: AuditEntry, meta: { id: string, at: string }): Promise<AuditRecord> {
  const day = dayOf(meta.at)
  if (!ctx.days.has(day)) {
    // The day list (pk `days`): the unfiltered list walks the days that have records, not the calendar.
    await ctx.raw.putItem(ctx.table, { pk: 'days', sk: day, kind: 'day', id: day, ttl: ttlOf(ctx, day) })
    ctx.days.add(day)
  }
  let last = ctx.heads.has(chain) ? ctx.heads.get(chain)! : await head(ctx, chain)
  for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt++) {
    const record = linkRecord(entry, { ...meta, chain }, last)
    const { chain: _chain, change, ...fields } = record
    const item: RecordItem = {
      ...fields,
      pk: chain,
      sk: seqKey(record.seq),
      kind: 'record',
      day,
      change: change ? JSON.stringify(change) : null,
      ttl: ttlOf(ctx, day),
      ...(actorKey(record.actor) ? { actor_key: actorKey(record.actor)! } : {}),
      ...(targetKey(record.target) ? { target_key: targetKey(record.target)! } : {}),
      ...(record.target ? { target_type: record.target.type } : {})
    }
    try {
      await ctx.raw.putItem(ctx.table, item as unknown as Record<string, unknown>, { condition: where.notExists('pk') })
      ctx.heads.set(chain, { seq: record.seq, hash: record.hash })
      return record
    } catch (err) {
      if (!isConditionFailed(err)) throw err
      // Lost the race for this position: back off a little (jittered), then take the next one.
      ctx.heads.delete(chain)
      await new Promise(resolve => setTimeout(resolve, Math.random() * Math.min(50, 2 ** attempt)))
      last = await head(ctx, chain)
    }
  }
  throw new Error(`audit chain ${chain}: could not append after ${MAX_APPEND_ATTEMPTS} attempts`)
}

/** The `actor` filter as stored: an id as given, a tried e-mail in lower case. */
const actorValue = (a: string): string => (a.includes('@') ? a.toLowerCase() : a)

/** The index that serves a filter best, and the filter's other parts as conditions. */
function plan (f: AuditFilter): { index: string, key: [string, string], rest: Condition[] } | null {
  const rest = (skip: string[]): Condition[] => [
    f.actor !== undefined && !skip.includes('actor') && where.eq('actor_key', actorValue(f.actor)),
    f.action !== undefined && !skip.includes('action') && where.eq('action', f.action),
    f.target_type !== undefined && !skip.includes('target_type') && where.eq('target_type', f.target_type),
    f.outcome !== undefined && where.eq('outcome', f.outcome)
  ].filter((c): c is Condition => Boolean(c))
  // Most selective first: one object's history, one actor's, one action's, one kind of object.
  if (f.target_type && f.target_id) return { index: 'target-id-index', key: ['target_key', `${f.target_type}#${f.target_id}`], rest: rest(['target_type']) }
  if (f.actor) return { index: 'actor-id-index', key: ['actor_key', actorValue(f.actor)], rest: rest(['actor']) }
  if (f.action) return { index: 'action-id-index', key: ['action', f.action], rest: rest(['action']) }
  if (f.target_type) return { index: 'target-type-id-index', key: ['target_type', f.target_type], rest: rest(['target_type']) }
  return null
}

/** The key condition on `id` of a time range (ids are ULIDs: their prefix is the time). */
function idRange (partition: [string, string], f: AuditFilter): KeyCondition {
  const from = f.from ? idFloor(Date.parse(f.from)) : undefined
  const to = f.to ? idCeil(Date.parse(f.to) - 1) : undefined
  if (from && to) return { partition, sort: { name: 'id', op: 'between', value: from, to } }
  if (from) return { partition, sort: { name: 'id', op: '>=', value: from } }
  if (to) return { partition, sort: { name: 'id', op: '<=', value: to } }
  return { partition }
}

/** Day partitions a page of the time index queries at most before it returns a short page. */
const DAYS_PER_PAGE = 14

/** Days with records from `newest` back to `oldest`, newest first (one Query of the day list). */
async function daysWithRecords (ctx: Context, oldest: string, newest: string, max: number, now: number): Promise<string[]> {
  const res = await ctx.raw.queryPage<{ sk: string }>({
    table: ctx.table,
    key: { partition: ['pk', 'days'], sort: { name: 'sk', op: 'between', value: oldest, to: newest } },
    filter: where.gt('ttl', Math.floor(now / 1000)),
    forward: false,
    limit: max,
    attributes: ['sk']
  })
  return res.items.map(i => i.sk)
}

/**
 * Records newest first. With an actor, action or target filter: one index query, the other
 * filters applied to its results. Without: the time index, one partition per day, walked
 * backwards from `to` (or today) to `from` (or the retention limit), at most DAYS_PER_PAGE
 * days per page; the cursor remembers the day and the position in it.
 */
async function list (ctx: Context, f: AuditFilter & { limit: number, cursor?: string | undefined }, now = Date.now()): Promise<Page<AuditRecord>> {
  const { limit, cursor, ...filter } = f
  const live = where.gt('ttl', Math.floor(now / 1000))
  const scope = { list: 'audit-log', ...filter }
  const p = plan(filter)
  if (p) {
    return readIndexPage<RecordItem, AuditRecord>(ctx.raw, ctx.cursors, {
      table: ctx.table,
      index: p.index,
      key: idRange(p.key, filter),
      filter: where.and(...p.rest, live),
      map: toRecord,
      cursorScope: scope,
      limit,
      cursor
    })
  }
  const oldest = filter.from ? dayOf(filter.from) : dayOf(now - ctx.retentionDays * 86_400_000)
  const newest = filter.to ? dayOf(Date.parse(filter.to) - 1) : dayOf(now)
  if (oldest > newest) return { items: [], next_cursor: null }
  let position: { d: string, k?: Record<string, unknown> } = { d: newest }
  if (cursor) position = ctx.cursors.decode(cursor, scope) as typeof position
  if (typeof position.d !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(position.d)) position = { d: newest }
  const queryDay = (day: string, max: number, startKey?: Record<string, unknown>): Promise<{ items: RecordItem[], lastKey?: Record<string, unknown> | undefined }> => ctx.raw.queryPage<RecordItem>({
    table: ctx.table,
    index: 'day-id-index',
    key: idRange(['day', day], filter),
    filter: where.and(live, filter.outcome !== undefined && where.eq('outcome', filter.outcome)),
    forward: false,
    limit: max,
    startKey
  })
  // The page's first day is read together with the day list: one round trip when it fills
  // the page, as the newest page of a busy log does.
  const [days, speculative] = await Promise.all([daysWithRecords(ctx, oldest, position.d, DAYS_PER_PAGE + 1, now), queryDay(position.d, limit, position.k)])
  const items: AuditRecord[] = []
  // The position inside a day only holds for that day (a day gone from the list starts afresh).
  let startKey = days[0] === position.d ? position.k : undefined
  let ahead = days[0] === position.d ? speculative : undefined
  let queries = 0
  for (let i = 0; i < days.length && queries < DAYS_PER_PAGE; i++) {
    const day = days[i]!
    do {
      const res = ahead ?? await queryDay(day, limit - items.length, startKey)
      ahead = undefined
      queries++
      items.push(...res.items.map(toRecord))
      startKey = res.lastKey
      if (items.length >= limit) {
        if (startKey) return { items, next_cursor: ctx.cursors.encode({ d: day, k: startKey }, scope) }
        const next = days[i + 1]
        return { items, next_cursor: next ? ctx.cursors.encode({ d: next }, scope) : null }
      }
    } while (startKey && queries < DAYS_PER_PAGE)
    if (startKey) return { items, next_cursor: ctx.cursors.encode({ d: day, k: startKey }, scope) }
    const next = days[i + 1]
    if (!next) return { items, next_cursor: null }
    if (queries >= DAYS_PER_PAGE) return { items, next_cursor: ctx.cursors.encode({ d: next }, scope) }
  }
  return { items, next_cursor: null }
}

/** A chain's records in order, page by page (verification). */
async function * chainRecords (ctx: Context, chain: string): AsyncGenerator<AuditRecord> {
  let startKey: Record<string, unknown> | undefined
  do {
    const res = await ctx.raw.queryPage<RecordItem>({ table: ctx.table, key: { partition: ['pk', chain] }, forward: true, limit: 500, startKey, consistent: true })
    for (const item of res.items) yield toRecord(item)
    startKey = res.lastKey
  } while (startKey)
}

/** The outbox: entries whose record is not written yet (docs/audit.md, failure policy). */
async function outboxPut (ctx: Context, id: string, at: string, entry: AuditEntry): Promise<void> {
  const item: OutboxItem = { pk: 'outbox', sk: id, kind: 'outbox', id, at, entry: JSON.stringify(entry), ttl: ttlOf(ctx, dayOf(at)) }
  await ctx.raw.putItem(ctx.table, item as unknown as Record<string, unknown>)
}

async function outboxDelete (ctx: Context, id: string): Promise<void> {
  await ctx.raw.deleteItem(ctx.table, { pk: 'outbox', sk: id })
}

/** Outbox entries older than `beforeMs` (their ids are ULIDs), oldest first. */
async function outboxDue (ctx: Context, beforeMs: number, limit = 100): Promise<Array<{ id: string, at: string, entry: AuditEntry }>> {
  const res = await ctx.raw.queryPage<OutboxItem>({ table: ctx.table, key: { partition: ['pk', 'outbox'], sort: { name: 'sk', op: '<', value: idFloor(beforeMs) } }, forward: true, limit, consistent: true })
  return res.items.map(i => ({ id: i.id, at: i.at, entry: JSON.parse(i.entry) as AuditEntry }))
}

export function createAuditRepository (model: TableModel, cursors: CursorCodec, raw: RawClient, opts: { retentionDays: number }) {
  const ctx: Context = { raw, cursors, table: model.table().name, retentionDays: opts.retentionDays, heads: new Map(), days: new Set() }
  return {
    table: ctx.table,
    retentionDays: opts.retentionDays,
    append: (chain: string, entry: AuditEntry, meta: { id: string, at: string }) => append(ctx, chain, entry, meta),
    list: (f: AuditFilter & { limit: number, cursor?: string | undefined }, now?: number) => list(ctx, f, now),
    chainRecords: (chain: string) => chainRecords(ctx, chain),
    outboxPut: (id: string, at: string, entry: AuditEntry) => outboxPut(ctx, id, at, entry),
    outboxDelete: (id: string) => outboxDelete(ctx, id),
    outboxDue: (beforeMs: number, limit?: number) => outboxDue(ctx, beforeMs, limit)
  }
}

export type AuditRepository = ReturnType<typeof createAuditRepository>
