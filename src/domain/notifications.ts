import { createHmac, randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import type {
  NotificationChannel as NotificationChannelDto, NotificationChannelType, NotificationTestResult, WebhookNotification
} from '../../openapi/generated/schemas.js'
import { DomainError } from './errors.js'

/**
 * Notifications (issue 19): the rules that need no framework. What a channel is as stored and
 * as shown, its signing secret and the Standard Webhooks signature, which outbound addresses
 * and URLs are refused, and the bodies sent (the versioned webhook envelope, the Slack message).
 */

export type { NotificationTestResult, WebhookNotification }
export type ChannelType = NotificationChannelType

/** A channel as stored: secrets only sealed (src/lib/secret-box.ts), never in the clear. */
export interface NotificationChannel {
  id: string
  name: string
  type: ChannelType
  /** webhook: the URL as given (not a secret). slack: null (the URL is sealed in `url_sealed`). */
  url: string | null
  url_sealed: string | null
  /** What is shown of the URL: the URL itself (webhook) or its masked form (slack). */
  url_shown: string
  enabled: boolean
  /** webhook: the signing secret, sealed; slack: null. */
  secret_sealed: string | null
  secret_prefix: string | null
  /** webhook, after a rotation: the previous secret, still signing until `previous_secret_expires_at`. */
  previous_secret_sealed: string | null
  previous_secret_expires_at: string | null
  last_test: NotificationTestResult | null
  version: number
  created_at: string
  updated_at: string
}

/** How long the previous signing secret keeps signing after a rotation. */
export const SECRET_GRACE_MS = 24 * 60 * 60 * 1000

export const toNotificationChannelDto = (c: NotificationChannel, now = Date.now()): NotificationChannelDto => {
  const graceOpen = c.previous_secret_expires_at !== null && Date.parse(c.previous_secret_expires_at) > now
  return {
    id: c.id,
    name: c.name,
    type: c.type,
    url: c.url_shown,
    enabled: c.enabled,
    secret_prefix: c.secret_prefix,
    previous_secret_expires_at: graceOpen ? c.previous_secret_expires_at : null,
    last_test: c.last_test,
    version: c.version,
    created_at: c.created_at,
    updated_at: c.updated_at
  }
}

// ------------------------------------------------------------------ secrets and signatures

const SECRET_PREFIX = 'whsec_'

/** A new signing secret: 32 random bytes, `whsec_<base64>` (the Standard Webhooks format). */
export function generateSigningSecret (): { secret: string, prefix: string } {
  const secret = `${SECRET_PREFIX}${randomBytes(32).toString('base64')}`
  return { secret, prefix: secret.slice(0, 12) }
}

/** The HMAC key of a secret: the bytes its base64 part decodes to. */
export const signingKey = (secret: string): Buffer => Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64')

/**
 * The `webhook-signature` header (Standard Webhooks): `v1,<base64 HMAC-SHA256 of
 * "<id>.<timestamp>.<body>">` per secret, space-separated, the current secret's first.
 */
export function signatureHeader (secrets: string[], id: string, timestamp: number, body: string): string {
  return secrets.map(secret => `v1,${createHmac('sha256', signingKey(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`).join(' ')
}

/** The secrets that sign now: the current one, and the previous one during its grace period. */
export function signingSecrets (current: string, previous: string | null, previousExpiresAt: string | null, now = Date.now()): string[] {
  return previous && previousExpiresAt && Date.parse(previousExpiresAt) > now ? [current, previous] : [current]
}

/** `text` with every occurrence of the secrets (and their distinctive parts) masked. */
export function maskSecrets (text: string, secrets: string[]): string {
  let out = text
  for (const secret of secrets) {
    for (const part of [secret, secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : '', pathOf(secret)]) {
      if (part && part.length >= 8) out = out.split(part).join('[redacted]')
    }
  }
  return out
}

const pathOf = (url: string): string => {
  try {
    const u = new URL(url)
    return u.pathname.length > 1 ? `${u.pathname}${u.search}` : ''
  } catch {
    return ''
  }
}

/** A Slack URL as shown: scheme, host and its last 4 characters (the URL is the secret). */
export function maskUrl (url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}/…${url.slice(-4)}`
}

// ------------------------------------------------------------------ outbound addresses

type Refusal = string | null

const v4 = (s: string): number[] => s.split('.').map(Number)

/** IPv4 ranges never called, with the reason (RFC 6890 special-purpose registry and more). */
const V4_RANGES: Array<[base: string, bits: number, reason: string]> = [
  ['0.0.0.0', 8, '"this network" (0.0.0.0/8)'],
  ['10.0.0.0', 8, 'private (10.0.0.0/8)'],
  ['100.64.0.0', 10, 'shared address space (100.64.0.0/10)'],
  ['169.254.169.254', 32, 'the cloud metadata service (169.254.169.254)'],
  ['169.254.0.0', 16, 'link-local (169.254.0.0/16)'],
  ['172.16.0.0', 12, 'private (172.16.0.0/12)'],
  ['192.0.0.0', 24, 'IETF protocol assignments (192.0.0.0/24)'],
  ['192.0.2.0', 24, 'documentation (192.0.2.0/24)'],
  ['192.168.0.0', 16, 'private (192.168.0.0/16)'],
  ['198.18.0.0', 15, 'benchmarking (198.18.0.0/15)'],
  ['198.51.100.0', 24, 'documentation (198.51.100.0/24)'],
  ['203.0.113.0', 24, 'documentation (203.0.113.0/24)'],
  ['224.0.0.0', 4, 'multicast (224.0.0.0/4)'],
  ['255.255.255.255', 32, 'broadcast (255.255.255.255)'],
  ['240.0.0.0', 4, 'reserved (240.0.0.0/4)']
]

const inRange = (bytes: number[], base: number[], bits: number): boolean => {
  for (let i = 0; i < bits; i++) {
    const byte = i >> 3
    const mask = 0x80 >> (i & 7)
    if (((bytes[byte] ?? 0) & mask) !== ((base[byte] ?? 0) & mask)) return false
  }
  return true
}

function v4Refusal (bytes: number[], allowLoopback: boolean): Refusal {
  if (bytes[0] === 127) return allowLoopback ? null : 'loopback (127.0.0.0/8)'
  for (const [base, bits, reason] of V4_RANGES) if (inRange(bytes, v4(base), bits)) return reason
  return null
}

/** The 16 bytes of an IPv6 address (net.isIPv6 already true), zone id dropped. */
function v6Bytes (address: string): number[] {
  let s = address.split('%')[0]!
  let tail: number[] | undefined
  const lastColon = s.lastIndexOf(':')
  if (s.slice(lastColon + 1).includes('.')) {
    tail = v4(s.slice(lastColon + 1))
    s = `${s.slice(0, lastColon + 1)}0:0`
  }
  const [head = '', rest] = s.split('::')
  const h = head ? head.split(':') : []
  const r = rest === undefined ? null : rest ? rest.split(':') : []
  const groups = r === null ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r]
  const bytes = groups.flatMap(g => { const n = parseInt(g || '0', 16); return [n >> 8, n & 0xff] })
  if (tail) bytes.splice(12, 4, ...tail)
  return bytes
}

const V6_RANGES: Array<[base: string, bits: number, reason: string]> = [
  ['64:ff9b:1::', 48, 'local-use NAT64 (64:ff9b:1::/48)'],
  ['100::', 64, 'discard-only (100::/64)'],
  ['2001:db8::', 32, 'documentation (2001:db8::/32)'],
  ['2001::', 32, 'Teredo (2001::/32)'],
  ['fd00:ec2::254', 128, 'the cloud metadata service (fd00:ec2::254)'],
  ['fc00::', 7, 'unique local (fc00::/7)'],
  ['fe80::', 10, 'link-local (fe80::/10)'],
  ['fec0::', 10, 'site-local (fec0::/10)'],
  ['ff00::', 8, 'multicast (ff00::/8)']
]

/** Why an IP address must not be called (null: it may). IPv6 forms that embed an IPv4 address are judged by it. */
export function addressRefusal (address: string, opts: { allowLoopback: boolean }): Refusal {
  const family = isIP(address.split('%')[0]!)
  if (family === 4) return v4Refusal(v4(address), opts.allowLoopback)
  if (family !== 6) return 'not an IP address'
  const b = v6Bytes(address)
  const zero = (from: number, to: number): boolean => b.slice(from, to).every(x => x === 0)
  if (zero(0, 16)) return 'unspecified (::)'
  if (zero(0, 15) && b[15] === 1) return opts.allowLoopback ? null : 'loopback (::1)'
  const embedded = (reason: string, bytes: number[]): Refusal => {
    const inner = v4Refusal(bytes, opts.allowLoopback)
    return inner ? `${reason} of ${bytes.join('.')}: ${inner}` : null
  }
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return embedded('IPv4-mapped', b.slice(12))
  if (zero(0, 12)) return embedded('IPv4-compatible', b.slice(12))
  if (inRange(b, v6Bytes('64:ff9b::'), 96)) return embedded('NAT64', b.slice(12))
  if (inRange(b, v6Bytes('2002::'), 16)) return embedded('6to4', b.slice(2, 6))
  for (const [base, bits, reason] of V6_RANGES) if (inRange(b, v6Bytes(base), bits)) return reason
  return null
}

/** Host names that only mean something on the local host or network. */
const LOCAL_SUFFIXES = ['.local', '.internal', '.localdomain', '.home.arpa', '.lan']

const isLoopbackName = (host: string): boolean => host === 'localhost' || host.endsWith('.localhost')

/**
 * A channel URL the service may call, or `unsafe_url`: https (http only to a loopback target
 * when loopback is allowed), no user info, no refused IP literal or local name. Names are
 * resolved and checked again at every delivery (src/lib/outbound-http.ts).
 */
export function checkChannelUrl (raw: string, opts: { allowLoopback: boolean }): URL {
  const refuse = (why: string): never => {
    throw new DomainError('unsafe_url', `The URL is not safe to call: ${why}.`, { errors: [{ path: '/body/url', message: why }] })
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return refuse('it is not a valid URL')
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') refuse('only https URLs are allowed')
  if (url.username || url.password) refuse('it must not contain a user name or password')
  const bracketed = url.hostname.startsWith('[')
  const host = (bracketed ? url.hostname.slice(1, -1) : url.hostname).toLowerCase().replace(/\.$/, '')
  if (!host) refuse('it has no host')
  let loopback = false
  if (isIP(host)) {
    const refusal = addressRefusal(host, { allowLoopback: false })
    loopback = refusal?.startsWith('loopback') === true || refusal?.includes(': loopback') === true
    const why = addressRefusal(host, opts)
    if (why) refuse(`its address is ${why}`)
  } else {
    loopback = isLoopbackName(host)
    if (loopback && !opts.allowLoopback) refuse(`${host} is the service's own host (loopback)`)
    if (!loopback && !host.includes('.')) refuse(`${host} is a single-label name (local network)`)
    const suffix = LOCAL_SUFFIXES.find(s => host.endsWith(s))
    if (suffix) refuse(`names under ${suffix} are local`)
  }
  if (url.protocol === 'http:' && !(opts.allowLoopback && loopback)) refuse('only https URLs are allowed')
  return url
}

// ------------------------------------------------------------------ bodies

/** The body of a test notification to a webhook channel (schema WebhookNotification). */
export function testNotification (p: { id: string, channelId: string, channelName: string, occurredAt: string, consoleUrl: string | null }): WebhookNotification {
  return {
    version: 1,
    id: p.id,
    type: 'test',
    occurred_at: p.occurredAt,
    data: {
      channel_id: p.channelId,
      channel_name: p.channelName,
      message: 'This is a test notification from the Cloud Monitoring Console: the channel works.',
      console_url: p.consoleUrl
    }
  }
}

/** Slack mrkdwn: &, < and > are control characters. */
const escapeSlack = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

export interface SlackMessage {
  text: string
  blocks: Array<Record<string, unknown>>
}

/**
 * A Slack Block Kit message: a section with the title and the severity, account and region
 * fields, a context line with a link to the console; `text` is the fallback of notifications.
 */
export function slackMessage (n: { severity: string, title: string, account: string | null, region: string | null, consoleUrl: string | null, context: string }): SlackMessage {
  const title = clip(n.title, 150)
  const context = [escapeSlack(clip(n.context, 500))]
  if (n.consoleUrl) context.push(`<${n.consoleUrl.replace(/[<>|]/g, '')}|Open the console>`)
  return {
    text: `[${n.severity.toUpperCase()}] ${title}`,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*${escapeSlack(title)}*` },
        fields: [
          { type: 'mrkdwn', text: `*Severity*\n${escapeSlack(n.severity)}` },
          { type: 'mrkdwn', text: `*Account*\n${escapeSlack(n.account ?? '—')}` },
          { type: 'mrkdwn', text: `*Region*\n${escapeSlack(n.region ?? '—')}` }
        ]
      },
      { type: 'context', elements: context.map(text => ({ type: 'mrkdwn', text })) }
    ]
  }
}

/** The Slack message of a test notification. */
export const slackTestMessage = (channelName: string, consoleUrl: string | null): SlackMessage => slackMessage({
  severity: 'info',
  title: 'Test notification from the Cloud Monitoring Console',
  account: null,
  region: null,
  consoleUrl,
  context: `Channel "${channelName}": this is a test, nothing needs you.`
})
