/**
 * The server under benchmark, started by scripts/bench/index.ts in its own process. It does what
 * src/server.ts does (configuration from the environment, the embedded DynamoDB stand-in on
 * disk in DATA_DIR, the first admin, listen on loopback) and adds what the bench needs:
 *
 * - the reference routes of the framework-overhead figure, in this same process and on the
 *   same table: `GET /bench/plain/:id` on the app (our global hooks apply, nothing else) and
 *   `GET /tasks/:id` on a bare Fastify instance (nothing at all), each one `GetItem`;
 * - an IPC channel: the stand-in's endpoint (the loader writes through it), memory figures
 *   after a full GC (run with --expose-gc), and the V8 CPU profiler (what --cpu-prof records)
 *   switched on and off around one scenario.
 *
 * src/server.ts itself is what the start-up figure measures.
 */
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import path from 'node:path'
import Fastify from 'fastify'
import type { AttributeValue } from '@aws-sdk/client-dynamodb'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { startEmbeddedDynamo } from '../../src/embedded-dynamodb.js'
import type { CpuSample } from './lib/load.js'
import { threadCpuMicros } from '../../src/lib/thread-cpu.js'
import { resolveJwtSecret } from '../../src/secrets.js'
import { ensureFirstAdmin } from '../../src/modules/users/first-admin.js'
import { fromAttributes } from './lib/attributes.js'
import { instrumentRoundTrips } from './lib/round-trips.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
process.env.AWS_EC2_METADATA_DISABLED ??= 'true'

export interface ChildReady {
  type: 'ready'
  port: number
  barePort: number
  endpoint: string
  tablePrefix: string
}

export interface ChildMemory {
  type: 'memory'
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
}

const config = loadConfig()
const embedded = await startEmbeddedDynamo({ path: path.join(config.dataDir, 'dynamodb') })
const app = await buildApp(config, { jwtSecret: await resolveJwtSecret(config), dynamodbEndpoint: embedded.endpoint })
app.addHook('onClose', async () => { await embedded.close() })

const tasksTable = `${config.tablePrefix}tasks`
const getTask = async (id: string): Promise<Record<string, AttributeValue> | undefined> =>
  (await app.db.client.getItem({ TableName: tasksTable, Key: { id: { S: id } }, ConsistentRead: true })).Item

// The same single GetItem our GET /api/tasks/{id} starts from, returned as plain JSON.
app.get<{ Params: { id: string } }>('/bench/plain/:id', { config: { policy: { kind: 'public' }, operationId: 'benchPlain' } }, async (request, reply) => {
  const item = await getTask(request.params.id)
  return item ? fromAttributes(item) : reply.code(404).send({ message: 'not found' })
})

const bare = Fastify()
bare.get<{ Params: { id: string } }>('/tasks/:id', async (request, reply) => {
  const item = await getTask(request.params.id)
  return item ? fromAttributes(item) : reply.code(404).send({ message: 'not found' })
})

// BENCH_DB_DELAY_MS: every DynamoDB call waits that long, and each request's calls are counted.
const delay = process.env.BENCH_DB_DELAY_MS
const roundTrips = delay === undefined ? undefined : instrumentRoundTrips(app, Number(delay))

await ensureFirstAdmin(app.repos.users, app.passwords, config.admin, app.stats)
await app.listen({ port: config.port, host: '127.0.0.1' })
await bare.listen({ port: 0, host: '127.0.0.1' })

const portOf = (server: { server: { address: () => unknown } }): number => (server.server.address() as { port: number }).port

let closing = false
async function shutdown (): Promise<void> {
  if (closing) return
  closing = true
  await bare.close()
  await app.close()
  process.exit(0)
}
const exitOnError = (err: unknown): void => {
  console.error(err)
  process.exit(1)
}
for (const signal of ['SIGTERM', 'SIGINT', 'disconnect'] as const) process.on(signal, () => { shutdown().catch(exitOnError) })
let profiler: Session | undefined
async function handle (message: { type?: string, file?: string }): Promise<void> {
  if (message.type === 'memory') {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc) {
      gc()
      gc()
    }
    const m = process.memoryUsage()
    // The stand-in runs in a worker thread with a V8 heap of its own: count both heaps.
    const standIn = await embedded.heapUsed()
    process.send?.({ type: 'memory', rss: m.rss, heapUsed: m.heapUsed + standIn, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers } satisfies ChildMemory)
  } else if (message.type === 'cpu') {
    const c = process.cpuUsage()
    // Where it went: this (the API's) main thread and the stand-in's thread; the rest is
    // libuv's pool (argon2, file I/O) and V8's helper threads (GC, compilation).
    const main = threadCpuMicros(`/proc/self/task/${process.pid}/stat`)
    const standIn = await embedded.cpuMicros()
    process.send?.({ type: 'cpu', micros: c.user + c.system, main, standIn } satisfies CpuSample & { type: 'cpu' })
  } else if (message.type === 'profile-start') {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval: 500 })
    await profiler.post('Profiler.start')
    process.send?.({ type: 'profile-start' })
  } else if (message.type === 'profile-stop' && profiler && message.file) {
    const { profile } = await profiler.post('Profiler.stop')
    await writeFile(message.file, JSON.stringify(profile))
    profiler.disconnect()
    profiler = undefined
    process.send?.({ type: 'profile-stop' })
  } else if (message.type === 'roundtrips') {
    process.send?.({ type: 'roundtrips', stats: roundTrips?.snapshot() ?? {} })
    roundTrips?.reset()
  } else if (message.type === 'close') {
    await shutdown()
  }
}
process.on('message', (message: { type?: string, file?: string }) => {
  handle(message).catch(exitOnError)
})

process.send?.({ type: 'ready', port: portOf(app), barePort: portOf(bare), endpoint: embedded.endpoint, tablePrefix: config.tablePrefix } satisfies ChildReady)
