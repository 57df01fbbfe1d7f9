/**
 * The `audit` phase: GET /api/audit-log at two sizes of the log. The app is built in this
 * process (buildApp, as the tests do) on its own embedded stand-in on disk, twice (one log of
 * each size, in tables of their own); the logs are filled through the audit service (the real
 * append: chains, day list), and each list is sent through the whole HTTP pipeline with
 * `inject` (auth, validation, serialization), one at a time, alternating the two logs.
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
  const admin = { email: 'admin@example.com', password: 'Saffron ledger 42 quiet harbor' }
  const apps: Array<Awaited<ReturnType<typeof buildApp>>> = []
  try {
    // Two apps on the same stand-in, each with its own tables: one log of each size.
    const logs: Array<{ app: Awaited<ReturnType<typeof buildApp>>, headers: Record<string, string>, size: number }> = []
    for (const [i, size] of opts.sizes.entries()) {
      const config = loadConfig({ LOG_LEVEL: 'silent', RATE_LIMIT_MAX: '1000000', AUTH_RATE_LIMIT_MAX: '1000000', TABLE_PREFIX: `bench-audit-${i}-`, ADMIN_EMAIL: admin.email, ADMIN_PASSWORD: admin.password, RETENTION_SWEEP_INTERVAL_SECONDS: '0' })
      const app = await buildApp(config, { jwtSecret: 'bench-secret-that-is-long-enough-for-hs256-0123456789', dynamodbEndpoint: db.endpoint, logger: false })
      apps.push(app)
      await app.ready()
      await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)
      const login = await app.inject({ method: 'POST', url: '/api/auth/login', payload: admin })
      const headers = { authorization: `Bearer ${login.json().access_token as string}` }
      // Filling through the audit service; many shards so that 16 writers rarely race for a position.
      const writer = createAuditService(app.repos.audit, { log: app.log, shards: 64 })
      let written = 0
      const started = Date.now()
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (written < size) await writer.record(entry(written++))
      }))
      opts.log(`audit: ${size} records appended in ${((Date.now() - started) / 1000).toFixed(1)} s`)
      logs.push({ app, headers, size })
    }
    const lists: Record<string, string> = {
      newest: '/api/audit-log?limit=20',
      actor: `/api/audit-log?limit=20&actor=${ACTORS[3]}`,
      action: '/api/audit-log?limit=20&action=user.update'
    }
    const get = async (log: typeof logs[number], url: string): Promise<number> => {
      const t0 = process.hrtime.bigint()
      const res = await log.app.inject({ method: 'GET', url, headers: log.headers })
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      if (res.statusCode !== 200 || res.json().items.length !== 20) throw new Error(`audit list ${url}: ${res.statusCode} ${res.body.slice(0, 200)}`)
      return ms
    }
    // Warm-up, then rounds that alternate the two logs (they share the machine's noise).
    for (const log of logs) for (const url of Object.values(lists)) for (let i = 0; i < 20; i++) await get(log, url)
    const times = logs.map(() => Object.fromEntries(Object.keys(lists).map(k => [k, [] as number[]])))
    const rounds = 4
    for (let r = 0; r < rounds; r++) {
      for (const [name, url] of Object.entries(lists)) {
        for (const [i, log] of (r % 2 ? [...logs].reverse() : logs).entries()) {
          const at = r % 2 ? logs.length - 1 - i : i
          for (let k = 0; k < Math.ceil(opts.samples / rounds); k++) times[at]![name]!.push(await get(log, url))
        }
      }
    }
    return logs.map((log, i) => {
      const p50 = Object.fromEntries(Object.entries(times[i]!).map(([k, v]) => [k, median(v)]))
      opts.log(`audit: list p50 at ${log.size} records: ${Object.entries(p50).map(([k, v]) => `${k} ${v.toFixed(2)} ms`).join(', ')}`)
      return { size: log.size, p50 }
    })
  } finally {
    for (const app of apps) await app.close()
    await db.close()
  }
}

const ACTORS = Array.from({ length: 50 }, (_v, i) => `bench-actor-${i}`)

function entry (i: number): AuditEntry {
  return {
    action: AuditActions[i % AuditActions.length]!,
    outcome: i % 7 === 0 ? 'failure' : 'success',
    actor: { type: 'user', id: ACTORS[i % ACTORS.length]!, role: 'admin', label: null },
    target: { type: 'user', id: ACTORS[(i * 7) % ACTORS.length]! },
    ip: '203.0.113.7',
    user_agent: 'bench',
    request_id: `bench-${i}`,
    change: i % 3 === 0 ? { name: { from: `old ${i}`, to: `new ${i}` } } : null,
    reason: null
  }
}
