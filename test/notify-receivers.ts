/**
 * What the notification tests share: real HTTP receivers on 127.0.0.1, the receiver's signature
 * check written from docs/notifications.md alone (and the documented example itself), and a
 * channel made through the API.
 */
import type { Test } from 'tap'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Api } from './helper.js'

export const LOOPBACK = { NOTIFICATION_ALLOW_LOOPBACK: 'true', NOTIFICATION_TIMEOUT_MS: '1500' }
export const MISSING_ID = '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV'

export interface Received { method: string, url: string, headers: IncomingHttpHeaders, body: string }

/** A receiver on 127.0.0.1: records every request and answers with `answer`. */
export async function receiver (t: Test, answer: (req: Received, res: ServerResponse) => void = (_r, res) => { res.writeHead(204).end() }) {
  const received: Received[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      received.push(r)
      answer(r, res)
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, port: (server.address() as AddressInfo).port }
}

/**
 * The receiver's check, written from docs/notifications.md ("Verifying a signature") only:
 * the key is the base64 after `whsec_`; the signed content is `<webhook-id>.<webhook-timestamp>.<raw body>`;
 * HMAC-SHA256, base64; `webhook-signature` holds space-separated `v1,<signature>` entries and
 * one match is enough; compare in constant time; refuse a timestamp more than 5 minutes away.
 */
export function verify (secret: string, headers: IncomingHttpHeaders, rawBody: string, now = Math.floor(Date.now() / 1000)): boolean {
  const id = String(headers['webhook-id'] ?? '')
  const timestamp = String(headers['webhook-timestamp'] ?? '')
  const signatures = String(headers['webhook-signature'] ?? '')
  if (!id || !/^\d+$/.test(timestamp) || Math.abs(now - Number(timestamp)) > 300) return false
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  const expected = Buffer.from(createHmac('sha256', key).update(`${id}.${timestamp}.${rawBody}`).digest('base64'))
  return signatures.split(' ').some(entry => {
    const [version, signature] = entry.split(',')
    if (version !== 'v1' || !signature) return false
    const given = Buffer.from(signature)
    return given.length === expected.length && timingSafeEqual(given, expected)
  })
}

/** The Node example of docs/notifications.md, run as it is printed there (between its markers). */
export async function documentedVerifier (t: Test): Promise<(secret: string, headers: IncomingHttpHeaders, rawBody: string) => boolean> {
  const doc = readFileSync(new URL('../docs/notifications.md', import.meta.url), 'utf8')
  const block = /<!-- verify-webhook:start -->\n```js\n([\s\S]*?)```\n<!-- verify-webhook:end -->/.exec(doc)?.[1]
  if (!block) throw new Error('docs/notifications.md has no verify-webhook example')
  const dir = mkdtempSync(path.join(tmpdir(), 'verify-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'verify.mjs')
  writeFileSync(file, block)
  return (await import(pathToFileURL(file).href)).verifyWebhook
}

export async function createChannel (api: Api, token: string, payload: object) {
  const res = await api.request({ method: 'POST', url: '/api/config/notification-channels', headers: api.auth(token), payload })
  if (res.statusCode !== 201) throw new Error(`create channel: ${res.statusCode} ${res.body}`)
  return res.json() as { channel: { id: string, url: string, version: number, secret_prefix: string | null }, signing_secret?: string }
}
