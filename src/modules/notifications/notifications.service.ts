import { STATUS_CODES } from 'node:http'
import type { CreateNotificationChannelRequest, UpdateNotificationChannelRequest } from '../../../openapi/generated/schemas.js'
import { DomainError } from '../../domain/errors.js'
import {
  SECRET_GRACE_MS, checkChannelUrl, generateSigningSecret, maskSecrets, maskUrl, signatureHeader, signingSecrets,
  slackTestMessage, testNotification, type NotificationChannel, type NotificationTestResult, type SlackMessage, type WebhookNotification
} from '../../domain/notifications.js'
import { newId } from '../../lib/ids.js'
import { postJson } from '../../lib/outbound-http.js'
import type { SecretBox } from '../../lib/secret-box.js'
import type { ChannelRefusal, ChannelWrite, NotificationsRepository } from './notifications.repository.js'

export interface NotificationsOptions {
  /** Seals and opens the channels' secrets. */
  box: SecretBox
  /** NOTIFICATION_ALLOW_LOOPBACK. */
  allowLoopback: boolean
  /** NOTIFICATION_TIMEOUT_MS. */
  timeoutMs: number
  /** PUBLIC_BASE_URL: the console's address in notifications; null when unknown. */
  consoleUrl: string | null
}

export const USER_AGENT = 'cloud-monitoring-webhooks/1'
/** How much of a receiver's answer a test shows. */
const EXCERPT_BYTES = 512

function refusalError (refusal: ChannelRefusal): DomainError {
  switch (refusal.reason) {
    case 'not_found': return new DomainError('not_found', 'Notification channel not found.')
    case 'stale': return new DomainError('precondition_failed', 'The notification channel was changed by someone else (ETag mismatch).')
    case 'secret_rotated': return new DomainError('conflict', 'The signing secret was rotated concurrently; retry.')
  }
}

function written<T> (outcome: ChannelWrite<T>): T {
  if (!outcome.ok) throw refusalError(outcome.refusal)
  return outcome.value
}

/** The AAD of a sealed value: which channel, which field. */
const sealContext = (id: string, field: 'secret' | 'previous_secret' | 'url'): string => `notification-channel:${id}:${field}`

/** A receiver's answer as text: at most 512 bytes, no control characters, the channel's secrets masked. */
function excerpt (body: Buffer, secrets: string[]): string | null {
  if (!body.length) return null
  const text = body.subarray(0, EXCERPT_BYTES).toString('utf8').replace(/\uFFFD+$/, '')
  // eslint-disable-next-line no-control-regex
  const clean = maskSecrets(text, secrets).replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g, '\uFFFD')
  return clean.slice(0, EXCERPT_BYTES) || null
}

export function createNotificationsService (repo: NotificationsRepository, opts: NotificationsOptions) {
  const { box } = opts
  const urlRules = { allowLoopback: opts.allowLoopback }

  /** The channel's secrets in the clear (for sending), or null when they cannot be opened with the current key. */
  function secretsOf (c: NotificationChannel): { url: string, signing: string[] } | null {
    try {
      if (c.type === 'slack') return { url: box.open(c.url_sealed ?? '', sealContext(c.id, 'url')), signing: [] }
      const current = box.open(c.secret_sealed ?? '', sealContext(c.id, 'secret'))
      let previous: string | null = null
      if (c.previous_secret_sealed) {
        try {
          previous = box.open(c.previous_secret_sealed, sealContext(c.id, 'previous_secret'))
        } catch {
          previous = null
        }
      }
      return { url: c.url ?? '', signing: signingSecrets(current, previous, c.previous_secret_expires_at) }
    } catch {
      return null
    }
  }

  return {
    list: (q: { limit: number, cursor?: string | undefined }) => repo.list(q),

    get: (id: string) => repo.getLive(id),

    /** Creates a channel; a webhook's signing secret is returned here only. */
    async create (input: CreateNotificationChannelRequest): Promise<{ channel: NotificationChannel, signingSecret?: string }> {
      checkChannelUrl(input.url, urlRules)
      const id = newId()
      const now = new Date().toISOString()
      const base = {
        id,
        name: input.name.trim() || input.type,
        type: input.type,
        enabled: input.enabled ?? true,
        previous_secret_sealed: null,
        previous_secret_expires_at: null,
        last_test: null,
        version: 1,
        created_at: now,
        updated_at: now
      }
      if (input.type === 'slack') {
        const channel = await repo.create({ ...base, url: null, url_sealed: box.seal(input.url, sealContext(id, 'url')), url_shown: maskUrl(input.url), secret_sealed: null, secret_prefix: null })
        return { channel }
      }
      const secret = generateSigningSecret()
      const channel = await repo.create({ ...base, url: input.url, url_sealed: null, url_shown: input.url, secret_sealed: box.seal(secret.secret, sealContext(id, 'secret')), secret_prefix: secret.prefix })
      return { channel, signingSecret: secret.secret }
    },

    async update (id: string, patch: UpdateNotificationChannelRequest, expectedVersion: number | undefined): Promise<NotificationChannel> {
      const current = await repo.getLive(id)
      if (patch.url !== undefined) checkChannelUrl(patch.url, urlRules)
      const url = patch.url === undefined
        ? {}
        : current.type === 'slack'
          ? { url_sealed: box.seal(patch.url, sealContext(id, 'url')), url_shown: maskUrl(patch.url) }
          : { url: patch.url, url_shown: patch.url }
      return written(await repo.update(id, { name: patch.name?.trim() || undefined, enabled: patch.enabled, ...url }, { version: expectedVersion }))
    },

    async remove (id: string): Promise<void> {
      written(await repo.remove(id))
    },

    /** A new signing secret (returned once); the current one keeps signing for SECRET_GRACE_MS. */
    async rotateSecret (id: string): Promise<{ channel: NotificationChannel, signingSecret: string }> {
      const current = await repo.getLive(id)
      if (current.type !== 'webhook') throw new DomainError('conflict', 'A Slack channel has no signing secret: its URL is the secret; replace it with PUT.')
      let previous: string | null = null
      try {
        previous = box.open(current.secret_sealed ?? '', sealContext(id, 'secret'))
      } catch {
        // Sealed under another key: nobody can sign with it any more, so there is no grace period to give.
        previous = null
      }
      const next = generateSigningSecret()
      const channel = written(await repo.update(id, {
        secret_sealed: box.seal(next.secret, sealContext(id, 'secret')),
        secret_prefix: next.prefix,
        previous_secret_sealed: previous ? box.seal(previous, sealContext(id, 'previous_secret')) : null,
        previous_secret_expires_at: previous ? new Date(Date.now() + SECRET_GRACE_MS).toISOString() : null
      }, { secretSealed: current.secret_sealed ?? undefined }))
      return { channel, signingSecret: next.secret }
    },

    /** Sends a test notification now and keeps the receiver's answer as `last_test`. */
    async test (id: string): Promise<NotificationTestResult> {
      const channel = await repo.getLive(id)
      const messageId = `msg_${newId()}`
      const { retryAfter: _r, ...result } = await send(channel, messageId, {
        webhook: () => testNotification({ id: messageId, channelId: channel.id, channelName: channel.name, occurredAt: new Date().toISOString(), consoleUrl: opts.consoleUrl }),
        slack: () => slackTestMessage(channel.name, opts.consoleUrl)
      })
      written(await repo.update(id, { last_test: result }))
      return result
    },

    send
  }

  /**
   * Sends one message to the channel (a webhook: the JSON of `webhook()`, signed; Slack: the
   * Block Kit message of `slack()`) and reports the receiver's answer; never throws for the
   * receiver's failures. `retryAfter`: the `Retry-After` of the answer, as sent.
   */
  async function send (channel: NotificationChannel, messageId: string, message: { webhook: () => WebhookNotification, slack: () => SlackMessage }): Promise<NotificationTestResult & { retryAfter: string | undefined }> {
    const testedAt = new Date().toISOString()
    const webhook = channel.type === 'webhook'
    const secrets = secretsOf(channel)
    if (!secrets) {
      return {
        ok: false,
        status_code: null,
        duration_ms: 0,
        response_excerpt: null,
        error_code: 'secret_unavailable',
        error_message: channel.type === 'slack'
          ? 'The stored Slack URL cannot be decrypted with the service\'s current key: enter the URL again (PUT).'
          : 'The stored signing secret cannot be decrypted with the service\'s current key: rotate the secret.',
        ...(webhook ? { message_id: messageId } : {}),
        tested_at: testedAt,
        retryAfter: undefined
      }
    }
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': USER_AGENT }
    let body: string
    if (webhook) {
      body = JSON.stringify(message.webhook())
      const timestamp = Math.floor(Date.now() / 1000)
      headers['webhook-id'] = messageId
      headers['webhook-timestamp'] = String(timestamp)
      headers['webhook-signature'] = signatureHeader(secrets.signing, messageId, timestamp, body)
    } else {
      body = JSON.stringify(message.slack())
    }
    const hidden = [...secrets.signing, ...(channel.type === 'slack' ? [secrets.url] : [])]
    const answer = await postJson(new URL(secrets.url), body, headers, { timeoutMs: opts.timeoutMs, allowLoopback: opts.allowLoopback, maxBodyBytes: EXCERPT_BYTES })
    const status = answer.status
    let failure: { error_code: NonNullable<NotificationTestResult['error_code']>, error_message: string } | undefined
    if (answer.error) failure = { error_code: answer.error.code, error_message: maskSecrets(answer.error.message, hidden) }
    else if (status !== null && status >= 300 && status < 400) {
      const location = typeof answer.headers.location === 'string' ? ` to ${maskSecrets(answer.headers.location, hidden).slice(0, 500)}` : ''
      failure = { error_code: 'redirect', error_message: `The receiver answered ${status} (a redirect${location}); redirects are not followed: configure the final URL.` }
    } else if (status === null || status < 200 || status >= 300) {
      failure = { error_code: 'http_status', error_message: `The receiver answered ${status ?? 'nothing'}${status ? ` ${STATUS_CODES[status] ?? ''}`.trimEnd() : ''}.` }
    }
    return {
      ok: !failure,
      status_code: status !== null && status >= 100 && status <= 599 ? status : null,
      duration_ms: Math.min(answer.durationMs, 600000),
      response_excerpt: excerpt(answer.body, hidden),
      ...(failure ?? {}),
      ...(webhook ? { message_id: messageId } : {}),
      tested_at: testedAt,
      retryAfter: typeof answer.headers['retry-after'] === 'string' ? answer.headers['retry-after'] : undefined
    }
  }
}

export type NotificationsService = ReturnType<typeof createNotificationsService>
