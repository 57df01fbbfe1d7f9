/**
 * Shared rate-limit store: with REDIS_URL every instance counts in one real Redis (started
 * here from the `redis-server` binary on a random loopback port); without it each instance
 * counts for itself; with Redis down the API stays up (fail open).
 *
 * Needs `redis-server` (Debian: apt-get install redis-server). Without it the tests are
 * skipped locally, and fail when CI is set.
 */
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'
import { build, assertProblem, type Api } from './helper.js'
import { REDIS_NAMESPACE } from '../src/plugins/rate-limit.js'

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server'
const installed = !spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' }).error && spawnSync(REDIS_SERVER, ['--version']).status === 0
const missing = `${REDIS_SERVER} is not installed (Debian: apt-get install -y redis-server)`
if (!installed && process.env.CI) t.fail(`${missing}: required when CI is set`)
const skip = installed ? false : missing

async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

interface RedisServer { url: string, client: Redis, stop: () => Promise<void> }

/** A throw-away redis-server: no persistence, loopback only, stopped at teardown. */
async function startRedis (): Promise<RedisServer> {
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    const child: ChildProcess = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const exited = once(child, 'exit')
    const stop = async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      await exited
    }
    const ready = await Promise.race([
      new Promise<boolean>(resolve => {
        const check = () => { if (/ready to accept connections/i.test(output)) resolve(true) }
        child.stdout!.on('data', check)
        check()
      }),
      exited.then(() => false),
      new Promise<boolean>(resolve => setTimeout(() => resolve(false), 10000).unref())
    ])
    if (ready) {
      const url = `redis://127.0.0.1:${port}`
      const client = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true })
      await client.connect()
      return {
        url,
        client,
        stop: async () => {
          client.disconnect()
          await stop()
        }
      }
    }
    await stop()
    lastError = new Error(`redis-server did not start on port ${port}:\n${output}`)
  }
  throw lastError
}

const health = (api: Api) => api.request({ method: 'GET', url: '/api/health' })

t.test('shared store (REDIS_URL)', { skip }, async t => {
  const redis = await startRedis()
  t.teardown(redis.stop)

  t.test('two instances share one budget per client', async t => {
    await redis.client.flushall()
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000' }
    const a = await build(t, env)
    const b = await build(t, env)
    const statuses: number[] = []
    const remaining: string[] = []
    for (const api of [a, a, a, b, b, b]) {
      const res = await health(api)
      statuses.push(res.statusCode)
      remaining.push(String(res.headers['x-ratelimit-remaining']))
    }
    t.same(statuses, [200, 200, 200, 200, 200, 429], 'the 6th request overall is refused, whichever instance gets it')
    t.same(remaining.slice(0, 5), ['4', '3', '2', '1', '0'], 'both instances count down one budget')
    const refused = await health(a)
    assertProblem(t, refused, 429, 'rate_limited')
    t.ok(Number(refused.headers['retry-after']) > 0, 'Retry-After')
    const keys = await redis.client.keys(`${REDIS_NAMESPACE}*`)
    t.ok(keys.length > 0 && keys.every(k => k.startsWith(REDIS_NAMESPACE)), `counters live under ${REDIS_NAMESPACE} (${keys.join(', ')})`)
  })

  t.test('the credential limit is shared too, and counted apart from the general one', async t => {
    await redis.client.flushall()
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MAX: '5', AUTH_RATE_LIMIT_MAX: '2' }
    const a = await build(t, env)
    const b = await build(t, env)
    const login = (api: Api) => api.request({ method: 'POST', url: '/api/auth/login', payload: { email: 'nobody@example.com', password: 'not the right password' } })
    t.equal((await login(a)).statusCode, 401)
    t.equal((await login(b)).statusCode, 401)
    assertProblem(t, await login(a), 429, 'rate_limited', 'the 3rd login overall')
    t.same([(await health(a)).statusCode, (await health(b)).statusCode], [200, 200], 'other routes still have their own budget')
    t.equal((await health(a)).headers['x-ratelimit-remaining'], '2', 'the logins did not use the general budget')
  })

  t.test('Redis down: the API stays up, without limits (fail open)', async t => {
    await redis.client.flushall()
    const env = { REDIS_URL: redis.url, RATE_LIMIT_MAX: '2' }
    const a = await build(t, env)
    t.equal((await health(a)).statusCode, 200)
    await redis.stop()
    const statuses: number[] = []
    for (let i = 0; i < 5; i++) statuses.push((await health(a)).statusCode)
    t.same(statuses, [200, 200, 200, 200, 200], 'a running instance keeps answering, beyond the limit')
    const started = Date.now()
    const late = await build(t, env)
    t.ok(Date.now() - started < 10000, `an instance starting while Redis is down starts anyway (${Date.now() - started} ms)`)
    const more: number[] = []
    for (let i = 0; i < 4; i++) more.push((await health(late)).statusCode)
    t.same(more, [200, 200, 200, 200])
  })
})

t.test('without REDIS_URL each instance counts for itself', async t => {
  const env = { RATE_LIMIT_MAX: '5' }
  const a = await build(t, env)
  const b = await build(t, env)
  const statuses: number[] = []
  for (const api of [a, a, a, b, b, b]) statuses.push((await health(api)).statusCode)
  t.same(statuses, [200, 200, 200, 200, 200, 200], 'six requests, three per instance: none refused')
  const more: number[] = []
  for (let i = 0; i < 3; i++) more.push((await health(a)).statusCode)
  t.same(more, [200, 200, 429], "the 6th request to one instance is refused: that instance's own budget")
})
