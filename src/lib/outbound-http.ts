import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import { addressRefusal } from '../domain/notifications.js'

/**
 * One outbound POST to a URL someone configured (a notification channel): the SSRF-safe way.
 *
 * - An IP literal is judged before anything is sent; a name is resolved by our own `lookup`,
 *   every address it resolves to is judged (src/domain/notifications.ts `addressRefusal`), and
 *   the socket connects to those checked addresses: nothing resolves the name a second time, so
 *   a DNS rebinding between the check and the connection cannot happen. TLS still verifies the
 *   certificate against the name.
 * - Redirects are never followed: a 3xx is the answer.
 * - One deadline bounds connecting, sending and reading the answer; at most `maxBodyBytes` of
 *   the answer are read, then the connection is dropped.
 * - No connection reuse (`agent: false`), no proxy.
 *
 * Every failure is an answer with an `error` (never a throw): the caller reports it.
 */
export type OutboundErrorCode = 'timeout' | 'unsafe_address' | 'dns_error' | 'connection_error' | 'tls_error'

export interface OutboundAnswer {
  /** The receiver's status; null when it never answered. */
  status: number | null
  headers: IncomingHttpHeaders
  /** At most `maxBodyBytes` of the answer's body. */
  body: Buffer
  durationMs: number
  error?: { code: OutboundErrorCode, message: string }
}

export interface OutboundOptions {
  timeoutMs: number
  /** Loopback addresses may be called (tests, local use). Every other refused range stays refused. */
  allowLoopback: boolean
  maxBodyBytes: number
}

const TLS_CODES = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|ERR_OSSL_)/

function classify (err: NodeJS.ErrnoException): { code: OutboundErrorCode, message: string } {
  const code = err.code ?? ''
  const message = `${code ? `${code}: ` : ''}${err.message}`.slice(0, 1000)
  if (code === 'EUNSAFEADDRESS') return { code: 'unsafe_address', message: err.message.slice(0, 1000) }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA' || code === 'EAI_FAIL') return { code: 'dns_error', message }
  if (TLS_CODES.test(code) || /certificate|tls|ssl/i.test(err.message)) return { code: 'tls_error', message }
  return { code: 'connection_error', message }
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/** A `lookup` for http(s).request that refuses a name when any of its addresses is refused. */
export function safeLookup (allowLoopback: boolean) {
  return (hostname: string, options: { family?: number | string, hints?: number, all?: boolean }, callback: LookupCallback): void => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : Number(options.family ?? 0)
    dnsLookup(hostname, { all: true, family: family === 4 || family === 6 ? family : 0, ...(options.hints ? { hints: options.hints } : {}) }, (err, addresses) => {
      if (err) return callback(err, [])
      if (!addresses.length) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), [])
      for (const a of addresses) {
        const why = addressRefusal(a.address, { allowLoopback })
        if (why) return callback(Object.assign(new Error(`${hostname} resolves to ${a.address}, ${why}: refused.`), { code: 'EUNSAFEADDRESS' }), [])
      }
      if (options.all) callback(null, addresses)
      else callback(null, addresses[0]!.address, addresses[0]!.family)
    })
  }
}

export function postJson (url: URL, body: string, headers: Record<string, string>, opts: OutboundOptions): Promise<OutboundAnswer> {
  const started = performance.now()
  const elapsed = (): number => Math.round(performance.now() - started)
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  if (isIP(host)) {
    const why = addressRefusal(host, { allowLoopback: opts.allowLoopback })
    if (why) return Promise.resolve({ status: null, headers: {}, body: Buffer.alloc(0), durationMs: elapsed(), error: { code: 'unsafe_address', message: `${host} is ${why}: refused.` } })
  }
  return new Promise(resolve => {
    let settled = false
    let status: number | null = null
    let answerHeaders: IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    let size = 0
    const finish = (error?: OutboundAnswer['error']): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve({ status, headers: answerHeaders, body: Buffer.concat(chunks).subarray(0, opts.maxBodyBytes), durationMs: elapsed(), ...(error ? { error } : {}) })
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest
    const req = send(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup: safeLookup(opts.allowLoopback) as never,
      agent: false
    })
    const timer = setTimeout(() => {
      finish({ code: 'timeout', message: status === null ? `No answer within ${opts.timeoutMs} ms.` : `The answer did not complete within ${opts.timeoutMs} ms.` })
    }, opts.timeoutMs)
    req.on('response', res => {
      status = res.statusCode ?? null
      answerHeaders = res.headers
      res.on('data', (chunk: Buffer) => {
        if (size < opts.maxBodyBytes) chunks.push(chunk)
        size += chunk.length
        // Enough read: the rest of the answer is not wanted.
        if (size >= opts.maxBodyBytes) finish()
      })
      res.on('end', () => finish())
      res.on('error', () => finish())
    })
    req.on('error', (err: NodeJS.ErrnoException) => {
      // An error after a complete status line (the receiver hung up mid-body) is still an answer.
      finish(status === null ? classify(err) : undefined)
    })
    req.end(body)
  })
}
