/**
 * The `audit` phase: GET /api/audit-log at two sizes of the log. The app is built in this
 * process (buildApp, as the tests do) on its own embedded stand-in on disk; the log is filled
 * through the audit service (the real append: chains, day list), and each list is sent through
 * the whole HTTP pipeline with `inject` (auth, validation, serialization), one at a time.
 */
import { mkdir } from 'node:fs/promises'
import { buildApp } from '../../../src/app.js'
import { loadConfig } from '../../../src/config.js'
import { startEmbeddedDynamo } from '../../../src/embedded-dynamodb.js'
import { ensureFirstAdmin } from '../../../src/modules/users/first-admin.js'
import { createAuditService } from '../../../src/modules/audit/audit.service.js'
import { AuditActions, type AuditEntry } from '../../../src/domain/audit.js'

export interface AuditBenchResult {
  /** Records in the log when measured. */
  size: number
  /** p50 (ms) per list: unfiltered newest page, actor filter, action filter. */
  p50: Record<string, number>
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

export async function measureAudit (opts: { dir: string, sizes: [number, number], samples: number, log: (m: string) => void }): Promise<AuditBenchResult[]> {
  await mkdir(opts.dir, { recursive: true })
  const db = await startEmbeddedDynamo({ path: opts.dir })
  const config = loadConfig({ LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '1000000', AUTH_RATE_LIMIT_MAX: '1000000', TABLE_PREFIX: 'bench-audit-', ADMIN_EMAIL: 'admin@example.com', ADMIN_PASSWORD: 'Saffron ledger 42 quiet harbor', RETENTION_SWEEP_INTERVAL_SECONDS: '0' })
  const app = await buildApp(config, { jwtSecret: 'bench-secret-that-is-long-enough-for-hs256-0123456789', dynamodbEndpoint: db.endpoint, logger: false })
  const out: AuditBenchResult[] = []
  try {
    await app.ready()
    await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)
    const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: config.admin.email, password: config.admin.password } })
    const token = login.json().access_token as string
    const headers = { authorization: `Bearer ${token}` }
    // Filling: many shards so that 16 writers rarely race for a position.
    const writer = createAuditService(app.repos.audit, { log: app.log, shards: 64 })
    const actors = Array.from({ length: 50 }, (_v, i) => `01JDQ8M2P6R0T3W7Y1B5D9G${String(i).padStart(3, '0').replace(/0/g, 'A')}`)
    const entry = (i: number): AuditEntry => ({
      action: AuditActions[i % AuditActions.length]!,
      outcome: i % 7 === 0 ? 'failure' : 'success',
      actor: { type: 'user', id: actors[i % actors.length]!, role: 'admin', label: null },
      target: { type: 'user', id: actors[(i * 7) % actors.length]! },
      ip: '203.0.113.7',
      user_agent: 'bench',
      request_id: `bench-${i}`,
      change: i % 3 === 0 ? { name: { from: `old ${i}`, to: `new ${i}` } } : null,
      reason: null
    })
    let written = 0
    const fill = async (until: number): Promise<void> => {
      const started = Date.now()
      const from = written
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (written < until) {
          const i = written++
          await writer.record(entry(i))
        }
      }))
      opts.log(`audit: ${until - from} records appended in ${((Date.now() - started) / 1000).toFixed(1)} s (log: ${until})`)
    }
    const lists: Record<string, string> = {
      newest: '/api/audit-log?limit=20',
      actor: `/api/audit-log?limit=20&actor=${actors[3]}`,
      action: '/api/audit-log?limit=20&action=user.update'
    }
    const measure = async (size: number): Promise<void> => {
      const p50: Record<string, number> = {}
      for (const [name, url] of Object.entries(lists)) {
        for (let i = 0; i < 20; i++) await app.inject({ method: 'GET', url, headers }) // warm-up
        const times: number[] = []
        for (let i = 0; i < opts.samples; i++) {
          const t0 = process.hrtime.bigint()
          const res = await app.inject({ method: 'GET', url, headers })
          times.push(Number(process.hrtime.bigint() - t0) / 1e6)
          if (res.statusCode !== 200 || res.json().items.length !== 20) throw new Error(`audit list ${url}: ${res.statusCode} ${res.body.slice(0, 200)}`)
        }
        p50[name] = median(times)
      }
      opts.log(`audit: list p50 at ${size} records: ${Object.entries(p50).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ')}`)
      out.push({ size, p50 })
    }
    await fill(opts.sizes[0])
    await measure(opts.sizes[0])
    await fill(opts.sizes[1])
    await measure(opts.sizes[1])
  } finally {
    await app.close()
    await db.close()
  }
  return out
}
