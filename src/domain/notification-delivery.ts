import type {
  NotificationChangeKind, NotificationRule as NotificationRuleDto, Severity, WebhookDigestData, WebhookDigestEventItem, WebhookDigestItem,
  WebhookDigestTaskItem, WebhookEventData, WebhookNotification, WebhookTaskData
} from '../../openapi/generated/schemas.js'
import { severityRank } from './monitoring-settings.js'
import { slackMessage, type SlackMessage } from './notifications.js'

/**
 * Notifications, part two (issue 19): what a change that notifies is, which rules match it,
 * what is sent (one notification, or a digest of a burst), and when a failed delivery is tried
 * again. No framework, no database: the worker (src/modules/notifications/worker.ts) applies it.
 *
 * How a change becomes a delivery, in short (docs/notifications.md has the whole story):
 * 1. The write that makes the change also adds a *mark* to the changed item (the event or the
 *    task): `notify` (a string set of marks) and `notify_shard` (the key of a sparse index). One
 *    write: the change and the duty to notify are stored together or not at all.
 * 2. The worker finds marked items through that index, queues one item per (change, channel)
 *    under a key derived from the change (a conditional put: queuing twice is harmless), then
 *    removes the marks it handled.
 * 3. Per channel, under a lease, it groups the queued items into one message (a digest when
 *    there are several), names the message before sending it, and sends it with the same id
 *    on every attempt, until it is delivered or dead.
 */

export type ChangeKind = NotificationChangeKind
export type NotificationRule = NotificationRuleDto

export const CHANGE_KINDS: readonly ChangeKind[] = ['event.created', 'event.reopened', 'event.resolved', 'task.assigned', 'task.status_changed', 'task.commented']

// ------------------------------------------------------------------ marks

/** Shards of the sparse "marked" index: its partition keys (`n0` … `n3`), written at random. */
export const MARK_SHARDS = 4
export const markShard = (): string => `n${Math.floor(Math.random() * MARK_SHARDS)}`
export const markShards = (): string[] => Array.from({ length: MARK_SHARDS }, (_, i) => `n${i}`)

/**
 * A mark: `<kind>@<ref>[:<detail>]`. `ref` makes it unique per change: the version the change
 * produced (events, task writes), or the comment id. `detail`: what the item alone does not
 * say any more when the worker reads it (the assignee assigned, the statuses of a move).
 */
export interface Mark { kind: ChangeKind, ref: string, detail: string | null }

export const markOf = (kind: ChangeKind, ref: string | number, detail?: string): string => `${kind}@${ref}${detail ? `:${detail}` : ''}`

export function parseMark (mark: string): Mark | null {
  const m = /^([a-z._]+)@([^:]+)(?::(.*))?$/.exec(mark)
  if (!m || !CHANGE_KINDS.includes(m[1] as ChangeKind)) return null
  return { kind: m[1] as ChangeKind, ref: m[2]!, detail: m[3] ?? null }
}

// ------------------------------------------------------------------ rules

/** What rules are matched against: the kind and, for event changes, the event's facts. */
export interface ChangeFacts {
  kind: ChangeKind
  severity?: Severity | undefined
  source?: string | undefined
  account_id?: string | undefined
}

const isEventKind = (kind: ChangeKind): boolean => kind.startsWith('event.')

export function ruleMatches (rule: Pick<NotificationRule, 'enabled' | 'kinds' | 'min_severity' | 'sources' | 'account_ids'>, facts: ChangeFacts): boolean {
  if (!rule.enabled || !rule.kinds.includes(facts.kind)) return false
  if (!isEventKind(facts.kind)) return true
  if (rule.min_severity && (!facts.severity || severityRank(facts.severity) < severityRank(rule.min_severity))) return false
  if (rule.sources.length && !(rule.sources as string[]).includes(facts.source ?? '')) return false
  if (rule.account_ids.length && !rule.account_ids.includes(facts.account_id ?? '')) return false
  return true
}

/** The channels a change goes to: those of every matching rule, each once. */
export function channelsFor (rules: readonly NotificationRule[], facts: ChangeFacts): string[] {
  const out = new Set<string>()
  for (const rule of rules) if (ruleMatches(rule, facts)) for (const id of rule.channel_ids) out.add(id)
  return [...out]
}

/**
 * What the writers of changes ask before marking one: does any enabled rule want it? Answered
 * from the rules cached in this process (no round trip on the write path); the worker matches
 * the rules again when it queues. An enabled rule applies within 5 seconds of being saved.
 */
export interface NotifyGate {
  wants: (facts: ChangeFacts) => Promise<boolean>
}

/** A gate that wants nothing (notifications not wired: scripts, benches of other paths). */
export const NOTIFY_NOTHING: NotifyGate = { wants: async () => false }

/** The marks of a change, when the gate wants it (else none). */
export async function marksFor (gate: NotifyGate, facts: ChangeFacts, ref: string | number, detail?: string): Promise<string[] | undefined> {
  return (await gate.wants(facts)) ? [markOf(facts.kind, ref, detail)] : undefined
}

/** The notification mark of an assignment (to `assignee`, by `by`) that produces `version`; none when unassigned. */
export const assignedMarks = (gate: NotifyGate, version: number, assignee: string | null | undefined, by: string): Promise<string[] | undefined> =>
  assignee ? marksFor(gate, { kind: 'task.assigned' }, version, taskMarkDetail([assignee, by])) : Promise.resolve(undefined)

// ------------------------------------------------------------------ what is sent

/** One queued notification: its kind, when the change happened, and its webhook `data` (a digest lists them as they are). */
export type Notification = WebhookDigestItem

/** The event fields a notification shows. */
export type NotifiedEvent = WebhookEventData['event'] & { deleted_at?: string | null }

export function eventNotification (kind: WebhookDigestEventItem['type'], e: NotifiedEvent, at: string, consoleUrl: string | null): WebhookDigestEventItem {
  return {
    type: kind,
    occurred_at: at,
    data: {
      event: {
        id: e.id,
        title: e.title,
        severity: e.severity,
        source: e.source,
        account_id: e.account_id,
        region: e.region,
        status: e.status,
        occurrence_count: e.occurrence_count,
        occurred_at: e.occurred_at,
        last_seen_at: e.last_seen_at,
        resolved_at: e.resolved_at
      },
      console_url: consoleUrl ? `${consoleUrl}/console/#/events/${e.id}` : null
    }
  }
}

/** The task fields a notification shows. */
export type NotifiedTask = WebhookTaskData['task']

/** A task change's `detail` in its mark: the values the task item alone does not keep. */
export const taskMarkDetail = (values: Array<string | null>): string => values.map(v => v ?? '').join(',')

/** The notification of a task change, from the task, the mark and (for a comment) the comment. */
export function taskNotification (mark: Mark, t: NotifiedTask, at: string, consoleUrl: string | null, comment?: { id: string, author_id: string, body: string }): WebhookDigestTaskItem {
  const [a = '', b = '', c = ''] = (mark.detail ?? '').split(',')
  const none = { by: null, from_status: null, to_status: null, assigned_to: null, comment_id: null, comment_excerpt: null }
  const change: WebhookTaskData['change'] = mark.kind === 'task.assigned'
    ? { ...none, assigned_to: a || null, by: b || null }
    : mark.kind === 'task.status_changed'
      ? { ...none, from_status: (a || null) as WebhookTaskData['change']['from_status'], to_status: (b || null) as WebhookTaskData['change']['to_status'], by: c || null }
      : { ...none, by: comment?.author_id ?? null, comment_id: comment?.id ?? null, comment_excerpt: comment ? clip(comment.body, 280) : null }
  return {
    type: mark.kind as WebhookDigestTaskItem['type'],
    occurred_at: at,
    data: {
      task: { id: t.id, title: t.title, status: t.status, priority: t.priority, assigned_to: t.assigned_to, created_by: t.created_by, event_id: t.event_id },
      change,
      console_url: consoleUrl ? `${consoleUrl}/console/#/tasks/${t.id}` : null
    }
  }
}

const severityOf = (n: Notification): Severity | null => ('event' in n.data ? n.data.event.severity : null)

/** Digest order: highest severity first (task changes after events), then oldest first. */
const byImportance = (a: Notification, b: Notification): number => {
  const sa = severityOf(a)
  const sb = severityOf(b)
  const ra = sa ? severityRank(sa) : -1
  const rb = sb ? severityRank(sb) : -1
  return rb - ra || a.occurred_at.localeCompare(b.occurred_at)
}

/** Notifications listed in a digest; the rest are counted only. */
export const DIGEST_LISTED = 50

/**
 * The body of a message: the notification itself when there is one, else a digest with the
 * counts of all and the 50 most important. `id` is the message id (the `webhook-id`).
 */
export function messageBody (id: string, notifications: Notification[], now: string, consoleUrl: string | null): WebhookNotification {
  if (notifications.length === 1) {
    const [n] = notifications as [Notification]
    return { version: 1, id, ...n }
  }
  const byType: Record<string, number> = {}
  const bySeverity: Record<string, number> = {}
  for (const n of notifications) {
    byType[n.type] = (byType[n.type] ?? 0) + 1
    const s = severityOf(n)
    if (s) bySeverity[s] = (bySeverity[s] ?? 0) + 1
  }
  const listed = [...notifications].sort(byImportance).slice(0, DIGEST_LISTED)
  const data: WebhookDigestData = {
    count: notifications.length,
    counts_by_type: byType,
    counts_by_severity: bySeverity,
    notifications: listed,
    omitted: notifications.length - listed.length,
    console_url: consoleUrl ? `${consoleUrl}/console/#/events` : null
  }
  const latest = notifications.reduce((max, n) => (n.occurred_at > max ? n.occurred_at : max), notifications[0]!.occurred_at)
  return { version: 1, id, type: 'digest', occurred_at: latest > now ? now : latest, data }
}

const SEVERITY_ORDER: Severity[] = ['critical', 'high', 'medium', 'low', 'info']

const KIND_WORDS: Record<ChangeKind, string> = {
  'event.created': 'new event',
  'event.reopened': 'event reopened',
  'event.resolved': 'event resolved',
  'task.assigned': 'task assigned',
  'task.status_changed': 'task status changed',
  'task.commented': 'comment on a task'
}

/** One line that says what a message is about (the delivery log's `summary`, Slack's fallback text). */
export function summaryOf (body: WebhookNotification): string {
  const data = body.data
  if ('count' in data) {
    const parts = SEVERITY_ORDER.filter(s => data.counts_by_severity[s]).map(s => `${data.counts_by_severity[s]} ${s}`)
    const tasks = Object.entries(data.counts_by_type).filter(([k]) => k.startsWith('task.')).reduce((sum, [, n]) => sum + (n ?? 0), 0)
    if (tasks) parts.push(`${tasks} task change${tasks === 1 ? '' : 's'}`)
    return clip(`${data.count} notifications: ${parts.join(', ')}`, 300)
  }
  if ('event' in data) {
    const e = data.event
    return clip(`[${e.severity}] ${KIND_WORDS[body.type as ChangeKind] ?? body.type}: ${e.title} in ${e.account_id} (${e.region})`, 300)
  }
  if ('task' in data) {
    const t = data.task
    const c = data.change
    const what = body.type === 'task.status_changed' && c.from_status && c.to_status
      ? `${c.from_status} → ${c.to_status}`
      : body.type === 'task.assigned' ? `assigned to ${c.assigned_to ?? 'nobody'}` : 'new comment'
    return clip(`[task] ${t.title}: ${what}`, 300)
  }
  return clip(`${body.type}`, 300)
}

const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/** The Slack message of a notification or a digest (Block Kit; `text` is the fallback). */
export function slackMessageOf (body: WebhookNotification): SlackMessage {
  const data = body.data
  if ('count' in data) {
    // The 5 most important, a line each (the context block has room for about 500 characters).
    const top = data.notifications.slice(0, 5).map(n => `• ${clip(summaryOf({ version: 1, id: body.id, ...n }), 80)}`)
    const more = data.count - top.length
    const highest = SEVERITY_ORDER.find(s => data.counts_by_severity[s]) ?? 'info'
    return slackMessage({
      severity: highest,
      title: summaryOf(body),
      account: null,
      region: null,
      consoleUrl: data.console_url,
      context: `${top.join('\n')}${more > 0 ? `\n…and ${more} more` : ''}`
    })
  }
  if ('event' in data) {
    const e = data.event
    return slackMessage({ severity: e.severity, title: `${KIND_WORDS[body.type as ChangeKind] ?? body.type}: ${e.title}`, account: e.account_id, region: e.region, consoleUrl: data.console_url, context: `${e.source} · status ${e.status} · seen ${e.occurrence_count} time${e.occurrence_count === 1 ? '' : 's'}` })
  }
  if ('task' in data) {
    const t = data.task
    return slackMessage({ severity: t.priority, title: summaryOf(body), account: null, region: null, consoleUrl: data.console_url, context: data.change.comment_excerpt ?? `Task ${t.status}, priority ${t.priority}` })
  }
  return slackMessage({ severity: 'info', title: summaryOf(body), account: null, region: null, consoleUrl: null, context: '' })
}

// ------------------------------------------------------------------ retries

export interface RetryPolicy {
  /** NOTIFICATION_RETRY_BASE_MS: the wait after the first failure (before jitter). */
  baseMs: number
  /** NOTIFICATION_MAX_ATTEMPTS: attempts before a message is dead. */
  maxAttempts: number
}

/** The longest wait between two attempts. */
export const MAX_RETRY_DELAY_MS = 6 * 3600 * 1000

/**
 * The wait after the `attempts`-th failed attempt: exponential (×4 per attempt, at most 6 hours)
 * with "equal jitter" (half fixed, half random) so that receivers coming back are not hit by
 * every sender at once. With the defaults (10 s, 8 attempts): about 10 s, 40 s, 3 min, 11 min,
 * 43 min, 3 h, 6 h; then dead, some 10 hours after the change.
 */
export function retryDelayMs (attempts: number, policy: Pick<RetryPolicy, 'baseMs'>, random = Math.random): number {
  const ceiling = Math.min(MAX_RETRY_DELAY_MS, policy.baseMs * 4 ** Math.max(0, attempts - 1))
  return Math.round(ceiling / 2 + random() * ceiling / 2)
}

/** A `Retry-After` of a 429 or 503, in ms (seconds or an HTTP date), within [0, MAX_RETRY_DELAY_MS]; null when absent or unreadable. */
export function retryAfterMs (value: string | undefined, now = Date.now()): number | null {
  if (!value) return null
  const seconds = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - now
  return Number.isFinite(seconds) ? Math.min(MAX_RETRY_DELAY_MS, Math.max(0, seconds)) : null
}
