import type { NotificationDelivery, WebhookNotification } from '../../../openapi/generated/schemas.js'
import type { Notification } from '../../domain/notification-delivery.js'
import { applied, readIndexPage } from '../../db/access.js'
import { where } from '../../db/expressions.js'
import type { CursorCodec, Page } from '../../db/pagination.js'
import type { RawClient } from '../../db/raw.js'
import type { NotificationItem } from './notifications.model.js'

/**
 * The delivery side of the notifications table (notifications.model.ts): queued notifications
 * (one per change and channel), messages (the delivery log) and the per-channel lease.
 */

/** Queued notifications and deliveries are kept this long once done. */
const DONE_TTL_S = 30 * 24 * 3600
/** Queued notifications read per channel and round (a digest groups at most this many). */
export const MAX_PER_MESSAGE = 1000
/** Parallel single-item writes of one step. */
const WRITE_CONCURRENCY = 16

export type DeliveryStatus = NotificationDelivery['status']

export interface Queued {
  channelId: string
  key: string
  notification: Notification
  queuedAt: string
  messageId: string | null
}

export interface Message {
  id: string
  channelId: string
  body: WebhookNotification
  keys: string[]
  summary: string
  count: number
  status: DeliveryStatus
  attempts: number
  lastStatusCode: number | null
  lastErrorCode: NotificationDelivery['last_error_code']
  lastError: string | null
  createdAt: string
  lastAttemptAt: string | null
  nextAttemptAt: string | null
}

const queueKey = (channelId: string, key: string) => ({ pk: `q#${channelId}`, sk: key })
const messageKey = (channelId: string, id: string) => ({ pk: `d#${channelId}`, sk: id })
const leaseKey = (channelId: string) => ({ pk: 'lease', sk: channelId })

const toQueued = (item: NotificationItem): Queued => ({
  channelId: item.pk.slice(2),
  key: item.sk,
  notification: JSON.parse(item.notification ?? '{}') as Notification,
  queuedAt: item.created_at ?? '',
  messageId: item.message_id ?? null
})

const toMessage = (item: NotificationItem): Message => ({
  id: item.sk,
  channelId: item.pk.slice(2),
  body: JSON.parse(item.body ?? '{}') as WebhookNotification,
  keys: item.change_keys ?? [],
  summary: item.summary ?? '',
  count: item.notification_count ?? 1,
  status: item.status ?? 'pending',
  attempts: item.attempts ?? 0,
  lastStatusCode: item.last_status_code ?? null,
  lastErrorCode: (item.last_error_code ?? null) as Message['lastErrorCode'],
  lastError: item.last_error ?? null,
  createdAt: item.created_at ?? '',
  lastAttemptAt: item.last_attempt_at ?? null,
  nextAttemptAt: item.next_attempt_at ?? null
})

export const toDeliveryDto = (m: Message): NotificationDelivery => ({
  id: m.id,
  channel_id: m.channelId,
  type: m.body.type as NotificationDelivery['type'],
  summary: m.summary,
  notification_count: m.count,
  status: m.status,
  attempts: m.attempts,
  last_status_code: m.lastStatusCode,
  last_error_code: m.lastErrorCode,
  last_error: m.lastError,
  created_at: m.createdAt,
  last_attempt_at: m.lastAttemptAt,
  next_attempt_at: m.status === 'retrying' ? m.nextAttemptAt : null
})

interface Ctx { raw: RawClient, cursors: CursorCodec, table: string }

/** `fn` on every item, WRITE_CONCURRENCY at a time. */
async function each<T> (items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += WRITE_CONCURRENCY) await Promise.all(items.slice(i, i + WRITE_CONCURRENCY).map(fn))
}

/**
 * Queues a notification for a channel under the change's key. Idempotent: the key exists
 * (queued, or delivered and kept 30 days) → nothing is written, false.
 */
function enqueue (ctx: Ctx, channelId: string, key: string, notification: Notification, now: string): Promise<boolean> {
  return applied(ctx.raw.putItem(ctx.table, {
    ...queueKey(channelId, key),
    kind: 'queued',
    due: channelId,
    due_sk: `${now}#${key}`,
    status: 'pending',
    notification: JSON.stringify(notification),
    occurred_at: notification.occurred_at,
    created_at: now
  }, { condition: where.notExists('pk') }))
}

/** The channel's queued notifications not delivered yet, oldest first (the sparse index). */
async function due (ctx: Ctx, channelId: string, max = MAX_PER_MESSAGE): Promise<Queued[]> {
  const out: Queued[] = []
  let startKey: Record<string, unknown> | undefined
  do {
    const page = await ctx.raw.queryPage<NotificationItem>({ table: ctx.table, index: 'due-index', key: { partition: ['due', channelId] }, forward: true, limit: Math.min(500, max - out.length), startKey })
    out.push(...page.items.map(toQueued))
    startKey = page.lastKey
  } while (startKey && out.length < max)
  return out
}

/** Names the message of queued notifications (only those not named yet: the others keep theirs). */
async function name (ctx: Ctx, items: Queued[], messageId: string): Promise<Queued[]> {
  const named: Queued[] = []
  await each(items, async (q) => {
    if (await applied(ctx.raw.updateItem(ctx.table, queueKey(q.channelId, q.key), { set: { message_id: messageId } }, { condition: where.and(where.exists('pk'), where.notExists('message_id')) }))) {
      named.push({ ...q, messageId })
    }
  })
  return named
}

/** Takes queued notifications off the due index with their final status (kept 30 days). */
async function finish (ctx: Ctx, items: Queued[], status: 'delivered' | 'dead' | 'skipped'): Promise<void> {
  const ttl = Math.floor(Date.now() / 1000) + DONE_TTL_S
  await each(items, q => ctx.raw.updateItem(ctx.table, queueKey(q.channelId, q.key), { set: { status, ttl }, remove: ['due', 'due_sk'] }, { condition: where.exists('pk') }).catch(() => undefined))
}

/** Stores a message before its first attempt; an existing one (named before a crash) is returned instead. */
async function createMessage (ctx: Ctx, m: Message): Promise<Message> {
  const item = {
    ...messageKey(m.channelId, m.id),
    kind: 'delivery',
    msg_type: m.body.type,
    body: JSON.stringify(m.body),
    change_keys: m.keys,
    summary: m.summary,
    notification_count: m.count,
    status: m.status,
    attempts: 0,
    created_at: m.createdAt,
    ttl: Math.floor(Date.parse(m.createdAt) / 1000) + DONE_TTL_S
  }
  if (await applied(ctx.raw.putItem(ctx.table, item, { condition: where.notExists('pk') }))) return m
  return (await getMessage(ctx, m.channelId, m.id))!
}

async function getMessage (ctx: Ctx, channelId: string, id: string): Promise<Message | null> {
  const item = await ctx.raw.getItem<NotificationItem>(ctx.table, messageKey(channelId, id))
  return item?.kind === 'delivery' ? toMessage(item) : null
}

/** Records an attempt's outcome (the message's status, counts and last answer). */
async function recordAttempt (ctx: Ctx, m: Message): Promise<void> {
  const set: Record<string, unknown> = { status: m.status, attempts: m.attempts, last_attempt_at: m.lastAttemptAt ?? undefined }
  const remove: string[] = []
  for (const [attr, value] of [['last_status_code', m.lastStatusCode], ['last_error_code', m.lastErrorCode], ['last_error', m.lastError], ['next_attempt_at', m.nextAttemptAt]] as const) {
    if (value === null || value === undefined) remove.push(attr)
    else set[attr] = value
  }
  await ctx.raw.updateItem(ctx.table, messageKey(m.channelId, m.id), { set, remove })
}

/** The channel's delivery log, newest first. */
function deliveries (ctx: Ctx, channelId: string, q: { limit: number, cursor?: string | undefined }): Promise<Page<Message>> {
  return readIndexPage(ctx.raw, ctx.cursors, {
    table: ctx.table,
    key: { partition: ['pk', `d#${channelId}`] },
    map: toMessage,
    cursorScope: { list: 'notification-deliveries', channel: channelId },
    limit: q.limit,
    cursor: q.cursor
  })
}

/** Takes the channel's lease until `untilMs` when it is free or expired; false when someone else holds it. */
function lease (ctx: Ctx, channelId: string, owner: string, untilMs: number, nowMs: number): Promise<boolean> {
  return applied(ctx.raw.putItem(ctx.table, { ...leaseKey(channelId), kind: 'lease', owner, until: untilMs }, {
    condition: where.or(where.notExists('pk'), where.lt('until', nowMs), where.eq('owner', owner))
  }))
}

async function release (ctx: Ctx, channelId: string, owner: string): Promise<void> {
  await applied(ctx.raw.deleteItem(ctx.table, leaseKey(channelId), { condition: where.eq('owner', owner) }))
}

export function createDeliveryRepository (table: string, cursors: CursorCodec, raw: RawClient) {
  const ctx: Ctx = { raw, cursors, table }
  return {
    enqueue: (channelId: string, key: string, notification: Notification, now: string) => enqueue(ctx, channelId, key, notification, now),
    due: (channelId: string, max?: number) => due(ctx, channelId, max),
    name: (items: Queued[], messageId: string) => name(ctx, items, messageId),
    finish: (items: Queued[], status: 'delivered' | 'dead' | 'skipped') => finish(ctx, items, status),
    createMessage: (m: Message) => createMessage(ctx, m),
    getMessage: (channelId: string, id: string) => getMessage(ctx, channelId, id),
    recordAttempt: (m: Message) => recordAttempt(ctx, m),
    deliveries: (channelId: string, q: { limit: number, cursor?: string | undefined }) => deliveries(ctx, channelId, q),
    lease: (channelId: string, owner: string, untilMs: number, nowMs: number) => lease(ctx, channelId, owner, untilMs, nowMs),
    release: (channelId: string, owner: string) => release(ctx, channelId, owner)
  }
}

export type DeliveryRepository = ReturnType<typeof createDeliveryRepository>
