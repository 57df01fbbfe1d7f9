import { DomainError } from '../../domain/errors.js'
import type { NotificationChannel, NotificationTestResult } from '../../domain/notifications.js'
import { readIndexPage, writeOrExplain, type WriteOutcome } from '../../db/access.js'
import { where } from '../../db/expressions.js'
import type { CursorCodec, Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { TableModel } from '../../db/tables.js'
import type { NotificationItem } from './notifications.model.js'

const CHANNEL = 'channel'

export type ChannelFields = Partial<Pick<NotificationChannel,
'name' | 'url' | 'url_sealed' | 'url_shown' | 'enabled' | 'secret_sealed' | 'secret_prefix' | 'previous_secret_sealed' | 'previous_secret_expires_at' | 'last_test'>>

/** Why a write of a channel was refused. */
export type ChannelRefusal =
  | { reason: 'not_found' }
  /** If-Match: the channel changed meanwhile. */
  | { reason: 'stale' }
  /** The secret the write was decided on was rotated meanwhile. */
  | { reason: 'secret_rotated' }

export type ChannelWrite<T = NotificationChannel> = WriteOutcome<T, ChannelRefusal>

const toChannel = (item: NotificationItem): NotificationChannel => ({
  id: item.sk,
  name: item.name ?? '',
  type: item.type ?? 'webhook',
  url: item.url ?? null,
  url_sealed: item.url_sealed ?? null,
  url_shown: item.url_shown ?? '',
  enabled: item.enabled ?? false,
  secret_sealed: item.secret_sealed ?? null,
  secret_prefix: item.secret_prefix ?? null,
  previous_secret_sealed: item.previous_secret_sealed ?? null,
  previous_secret_expires_at: item.previous_secret_expires_at ?? null,
  last_test: item.last_test ? JSON.parse(item.last_test) as NotificationTestResult : null,
  version: item.version ?? 1,
  created_at: item.created_at ?? '',
  updated_at: item.updated_at ?? ''
})

interface Context { raw: RawClient, cursors: CursorCodec, table: string }

const key = (id: string) => ({ pk: CHANNEL, sk: id })

async function getById (ctx: Context, id: string): Promise<NotificationChannel | null> {
  const item = await ctx.raw.getItem<NotificationItem>(ctx.table, key(id))
  return item?.kind === CHANNEL ? toChannel(item) : null
}

async function getLive (ctx: Context, id: string): Promise<NotificationChannel> {
  const channel = await getById(ctx, id)
  if (!channel) throw new DomainError('not_found', 'Notification channel not found.')
  return channel
}

async function create (ctx: Context, c: NotificationChannel): Promise<NotificationChannel> {
  const item: Record<string, unknown> = { ...key(c.id), kind: CHANNEL }
  for (const [k, v] of Object.entries(c)) {
    if (k === 'id' || v === null || v === undefined) continue
    item[k] = k === 'last_test' ? JSON.stringify(v) : v
  }
  // A fresh ULID is never taken; the condition makes a collision a loud failure, not an overwrite.
  await ctx.raw.putItem(ctx.table, item, { condition: where.notExists('pk') })
  return c
}

/**
 * Sets `fields` (nulls removed) and bumps the version, if the channel exists, is still at
 * `expectedVersion` (If-Match) and still has the secret `expectedSecret` (rotation).
 */
async function update (ctx: Context, id: string, fields: ChannelFields, expected: { version?: number | undefined, secretSealed?: string | undefined } = {}): Promise<ChannelWrite> {
  const set: Record<string, unknown> = { updated_at: new Date().toISOString() }
  const remove: string[] = []
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue
    if (v === null) remove.push(k)
    else set[k] = k === 'last_test' ? JSON.stringify(v) : v
  }
  return writeOrExplain(async () => {
    const updated = await ctx.raw.updateItem<NotificationItem>(ctx.table, key(id), { set, add: { version: 1 }, remove }, {
      condition: where.and(
        where.exists('pk'),
        expected.version !== undefined && where.eq('version', expected.version),
        expected.secretSealed !== undefined && where.eq('secret_sealed', expected.secretSealed)
      ),
      returnValues: 'ALL_NEW'
    })
    return toChannel(updated!)
  }, async (): Promise<ChannelRefusal> => {
    const current = await getById(ctx, id)
    if (!current) return { reason: 'not_found' }
    if (expected.secretSealed !== undefined && current.secret_sealed !== expected.secretSealed) return { reason: 'secret_rotated' }
    return { reason: 'stale' }
  })
}

/** Deletes the channel and with it its sealed secrets. */
async function remove (ctx: Context, id: string): Promise<ChannelWrite<void>> {
  return writeOrExplain(
    () => ctx.raw.deleteItem(ctx.table, key(id), { condition: where.exists('pk') }),
    async (): Promise<ChannelRefusal> => ({ reason: 'not_found' })
  )
}

/** Channels, newest first (one Query on the `channel` partition, descending ULIDs). */
function list (ctx: Context, q: { limit: number, cursor?: string | undefined }): Promise<Page<NotificationChannel>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.table,
    key: { partition: ['pk', CHANNEL] },
    map: toChannel,
    cursorScope: { list: 'notification-channels' },
    limit: q.limit,
    cursor: q.cursor
  })
}

async function all (ctx: Context): Promise<NotificationChannel[]> {
  const out: NotificationChannel[] = []
  let startKey: Record<string, unknown> | undefined
  do {
    const page = await ctx.raw.queryPage<NotificationItem>({ table: ctx.table, key: { partition: ['pk', CHANNEL] }, startKey })
    out.push(...page.items.map(toChannel))
    startKey = page.lastKey
  } while (startKey)
  return out
}

export function createNotificationsRepository (model: TableModel, cursors: CursorCodec, raw: RawClient) {
  const ctx: Context = { raw, cursors, table: model.table().name }
  return {
    getLive: (id: string) => getLive(ctx, id),
    create: (channel: NotificationChannel) => create(ctx, channel),
    update: (id: string, fields: ChannelFields, expected?: { version?: number | undefined, secretSealed?: string | undefined }) => update(ctx, id, fields, expected),
    remove: (id: string) => remove(ctx, id),
    list: (q: { limit: number, cursor?: string | undefined }) => list(ctx, q),
    /** Every channel (the worker; the existence check of rules): one partition, read whole. */
    all: () => all(ctx),
    /** Which of these ids are channels (one BatchGet-sized set of reads). */
    existing: async (ids: string[]) => new Set((await Promise.all(ids.map(id => getById(ctx, id)))).filter(c => c !== null).map(c => c.id))
  }
}

export type NotificationsRepository = ReturnType<typeof createNotificationsRepository>
