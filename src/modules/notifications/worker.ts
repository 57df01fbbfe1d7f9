import { hostname } from 'node:os'
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { NotificationTestResult } from '../../domain/notifications.js'
import {
  channelsFor, markShards, messageBody, retryAfterMs, retryDelayMs, slackMessageOf, summaryOf,
  type ChangeFacts, type Notification, type NotificationRule, type RetryPolicy
} from '../../domain/notification-delivery.js'
import type { NotificationChannel, SlackMessage, WebhookNotification } from '../../domain/notifications.js'
import { newId } from '../../lib/ids.js'
import type { DeliveryRepository, Message, Queued } from './delivery.repository.js'

/**
 * The notification worker: queues the marked changes, then delivers per channel. Safe to run
 * in several processes at once (the embedded server's poller, a scheduled Lambda, `npm run
 * notify`), and to kill at any point:
 *
 * - Queuing is idempotent: a change's notification for a channel has a key derived from the
 *   change; the mark is removed only after its notifications are queued. Killed in between,
 *   the next run queues again and finds the keys taken.
 * - A channel is delivered to by the holder of its lease only (a conditional write that
 *   expires: 3 × the time-out + 2 s, renewed before each attempt), so one message is never
 *   sent by two workers at once.
 * - A message is named before it is sent: first its id is written on each queued notification
 *   it carries, then the message itself (body, keys) is stored, then it is sent, then the
 *   outcome is recorded, then the notifications are taken off the queue. Killed anywhere, the
 *   next holder of the lease finds the named notifications and sends the same message (the
 *   same id, the same body) again: receivers deduplicate on `webhook-id` (docs/notifications.md).
 *   Nothing is lost; a receiver may see a message twice only if the worker died between the
 *   receiver's answer and the record of it, and then with the same id.
 */

/** Where marked changes come from (the events and tasks tables, wired in src/notify-sources.ts). */
export interface MarkSource {
  /** Prefix of the queue keys: `event`, `task`. */
  name: string
  /** Ids of marked items in one shard of the sparse index. */
  marked: (shard: string, limit: number) => Promise<string[]>
  /**
   * The item's marks, each with what it notifies: the notification and the facts rules match;
   * null when it notifies nothing any more (the item was deleted, the comment never stored);
   * 'wait' when it may still (a comment whose write is under way): the mark stays.
   */
  read: (id: string) => Promise<Array<{ mark: string, change: { notification: Notification, facts: ChangeFacts } | null | 'wait' }>>
  clear: (id: string, marks: string[]) => Promise<void>
}

export interface WorkerOptions {
  deliveries: DeliveryRepository
  channels: { all: () => Promise<NotificationChannel[]> }
  rules: () => Promise<NotificationRule[]>
  sources: MarkSource[]
  send: (channel: NotificationChannel, messageId: string, message: { webhook: () => WebhookNotification, slack: () => SlackMessage }) => Promise<NotificationTestResult & { retryAfter: string | undefined }>
  retry: RetryPolicy
  /** NOTIFICATION_GROUP_WINDOW_MS: how long the first queued notification of a channel waits for others to group with. */
  groupWindowMs: number
  timeoutMs: number
  consoleUrl: string | null
  log: Pick<FastifyBaseLogger, 'warn' | 'error' | 'info'>
}

/** What one run did (the tests, the Lambda's log line). */
export interface DrainReport { queued: number, marksCleared: number, sent: number, delivered: number, failed: number, dead: number }

/** Marked items read per shard and round. */
const MARKED_PER_ROUND = 100
/** Rounds of queuing per run (a burst of a few thousand changes is queued in one run). */
const MAX_ROUNDS = 50
const ITEM_CONCURRENCY = 8

async function eachLimit<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items]
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item)
  }))
}

export function createNotificationWorker (opts: WorkerOptions) {
  const owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
  const leaseMs = 3 * opts.timeoutMs + 2_000
  const { deliveries } = opts

  /** Queues the notifications of marked changes, then removes the marks. */
  async function queueMarked (report: DrainReport, rules: NotificationRule[], channels: Map<string, NotificationChannel>): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let full = false
      for (const source of opts.sources) {
        await Promise.all(markShards().map(async (shard) => {
          const ids = await source.marked(shard, MARKED_PER_ROUND)
          if (ids.length === MARKED_PER_ROUND) full = true
          await eachLimit(ids, ITEM_CONCURRENCY, async (id) => {
            const handled: string[] = []
            for (const { mark, change } of await source.read(id)) {
              if (change === 'wait') continue
              if (change) {
                const now = new Date().toISOString()
                const targets = channelsFor(rules, change.facts).filter(c => channels.get(c)?.enabled)
                const results = await Promise.all(targets.map(c => deliveries.enqueue(c, `${source.name}#${id}#${mark}`, change.notification, now)))
                report.queued += results.filter(Boolean).length
              }
              handled.push(mark)
            }
            await source.clear(id, handled)
            report.marksCleared += handled.length
          })
        }))
      }
      if (!full) return
    }
  }

  const newMessage = (id: string, channel: NotificationChannel, items: Queued[]): Message => {
    const body = messageBody(id, items.map(q => q.notification), new Date().toISOString(), opts.consoleUrl)
    return {
      id,
      channelId: channel.id,
      body,
      keys: items.map(q => q.key),
      summary: summaryOf(body),
      count: items.length,
      status: 'pending',
      attempts: 0,
      lastStatusCode: null,
      lastErrorCode: null,
      lastError: null,
      createdAt: new Date().toISOString(),
      lastAttemptAt: null,
      nextAttemptAt: null
    }
  }

  /** One attempt at a message, its outcome recorded; the notifications leave the queue once it is final. */
  async function attempt (report: DrainReport, channel: NotificationChannel, m: Message, items: Queued[]): Promise<void> {
    // Still ours? (Renewed for this attempt; lost only if this run stalled past the lease.)
    if (!(await deliveries.lease(channel.id, owner, Date.now() + leaseMs, Date.now()))) throw new Error('the channel\'s lease was lost')
    if (!channel.enabled) {
      await deliveries.recordAttempt({ ...m, status: 'skipped', nextAttemptAt: null })
      await deliveries.finish(items, 'skipped')
      return
    }
    report.sent++
    const result = await opts.send(channel, m.id, { webhook: () => m.body, slack: () => slackMessageOf(m.body) })
    const now = Date.now()
    const attempts = m.attempts + 1
    const answered = { attempts, lastAttemptAt: new Date(now).toISOString(), lastStatusCode: result.status_code, lastErrorCode: result.ok ? null : result.error_code ?? null, lastError: result.ok ? null : result.error_message ?? null }
    if (result.ok) {
      report.delivered++
      await deliveries.recordAttempt({ ...m, ...answered, status: 'delivered', nextAttemptAt: null })
      await deliveries.finish(items, 'delivered')
      return
    }
    report.failed++
    if (attempts >= opts.retry.maxAttempts) {
      report.dead++
      opts.log.warn({ channel: channel.id, message_id: m.id, attempts, error_code: answered.lastErrorCode }, 'notification dead: retries exhausted')
      await deliveries.recordAttempt({ ...m, ...answered, status: 'dead', nextAttemptAt: null })
      await deliveries.finish(items, 'dead')
      return
    }
    const wait = Math.max(retryDelayMs(attempts, opts.retry), retryAfterMs(result.retryAfter, now) ?? 0)
    await deliveries.recordAttempt({ ...m, ...answered, status: 'retrying', nextAttemptAt: new Date(now + wait).toISOString() })
  }

  /** Delivers what is due to one channel, under its lease. */
  async function deliverChannel (report: DrainReport, channel: NotificationChannel): Promise<void> {
    const due = await deliveries.due(channel.id)
    if (!due.length) return
    const now = Date.now()
    if (!(await deliveries.lease(channel.id, owner, now + leaseMs, now))) return
    try {
      // Messages named before (retries, or a run killed mid-delivery) first.
      const named = new Map<string, Queued[]>()
      for (const q of due) if (q.messageId) named.set(q.messageId, [...(named.get(q.messageId) ?? []), q])
      for (const [id, items] of named) {
        const m = await deliveries.getMessage(channel.id, id) ?? await deliveries.createMessage(newMessage(id, channel, items))
        if (m.status === 'delivered' || m.status === 'dead' || m.status === 'skipped') {
          await deliveries.finish(items, m.status)
          continue
        }
        if (m.status === 'retrying' && m.nextAttemptAt && Date.parse(m.nextAttemptAt) > Date.now()) continue
        await attempt(report, channel, m, items)
      }
      // Then the new ones, grouped in one message once the first has waited the group window.
      const fresh = due.filter(q => !q.messageId)
      if (fresh.length && Date.now() - Date.parse(fresh[0]!.queuedAt) >= opts.groupWindowMs) {
        const id = `msg_${newId()}`
        const mine = await deliveries.name(fresh, id)
        if (mine.length) await attempt(report, channel, await deliveries.createMessage(newMessage(id, channel, mine)), mine)
      }
    } finally {
      await deliveries.release(channel.id, owner)
    }
  }

  return {
    /** One run: queue what is marked, then deliver what is due, channel by channel. */
    async drain (): Promise<DrainReport> {
      const report: DrainReport = { queued: 0, marksCleared: 0, sent: 0, delivered: 0, failed: 0, dead: 0 }
      const [rules, all] = await Promise.all([opts.rules(), opts.channels.all()])
      const channels = new Map(all.map(c => [c.id, c]))
      await queueMarked(report, rules, channels)
      await eachLimit(all, 4, async (channel) => {
        try {
          await deliverChannel(report, channel)
        } catch (err) {
          opts.log.error({ err, channel: channel.id }, 'notification delivery failed; retried at the next run')
        }
      })
      return report
    }
  }
}

export type NotificationWorker = ReturnType<typeof createNotificationWorker>
