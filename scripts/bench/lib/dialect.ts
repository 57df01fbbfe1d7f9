/**
 * The data layer's two dialects on the hot paths, in the bench process itself (no HTTP, no
 * Fastify): Dynamoose (`Model.get`, `Model.query`, `Model.update`, `new Model().save`) against
 * the bare SDK client calls of src/db/raw.ts's toolkit (`getItem`, `queryPage`, `updateItem`, `putItem`),
 * on the same tables, items and requests.
 *
 * The embedded stand-in runs on disk (a LevelDB directory, as `npm start`), in its worker
 * thread; the client is the app's (src/db/client.ts) and the tables are the app's models
 * (`getModels` of src/data.ts, created by `initializeTables`). Seeding writes generated tasks
 * and events (scripts/bench/lib/data.ts, the repositories' shapes) through the models.
 *
 * Each operation runs `concurrency` calls in flight for `seconds`, alternately with the two
 * dialects (the order swapped every round), so both compete equally for the machine.
 * Figures per operation and dialect: calls/s, mean and p99 latency, CPU time per call
 * (`process.cpuUsage()`: all threads, the stand-in's included) and the main thread's CPU time
 * per call (Linux's per-thread counters: the client side alone, where the two dialects
 * differ; the stand-in runs in its own thread).
 */
import { where } from '../../../src/db/expressions.js'
import { threadCpuMicros } from '../../../src/lib/thread-cpu.js'
import type { DynamoDB } from '@aws-sdk/client-dynamodb'
import dynamoose from 'dynamoose'
import { getModels } from '../../../src/data.js'
import { createDynamoClient } from '../../../src/db/client.js'
import { createRawClient } from '../../../src/db/raw.js'
import { initializeTables } from '../../../src/db/tables.js'
import { startEmbeddedDynamo } from '../../../src/embedded-dynamodb.js'
import { newId } from '../../../src/lib/ids.js'
import type { EventItem } from '../../../src/modules/events/events.model.js'
import type { TaskItem } from '../../../src/modules/tasks/tasks.model.js'
import { fromAttributes } from './attributes.js'
import { ACCOUNTS, event, task } from './data.js'
import { percentile } from './load.js'

export type Dialect = 'dynamoose' | 'bare'
export const DIALECTS: readonly Dialect[] = ['dynamoose', 'bare']

export interface DialectOptions {
  /** The stand-in's data directory (created). */
  dir: string
  rounds: number
  /** Seconds per operation, dialect and round. */
  seconds: number
  /** Calls in flight. */
  concurrency: number
  tasks: number
  events: number
  log: (message: string) => void
}

export interface DialectFigures {
  calls: number
  seconds: number
  perSecond: number
  /** ms */
  mean: number
  /** ms */
  p99: number
  /** µs of process CPU (all threads) per call */
  cpu: number
  /** µs of the main thread's CPU per call (the client side: where the dialects differ) */
  main: number
}

export interface DialectResult {
  operation: string
  /** What both dialects send (the same request). */
  request: string
  dynamoose: DialectFigures
  bare: DialectFigures
}

export interface DialectRun {
  results: DialectResult[]
  /** Seeding and equivalence checks, one line each. */
  notes: string[]
}

type Call = (worker: number, n: number) => Promise<unknown>
interface Operation { name: string, request: string, calls: Record<Dialect, Call> }

const PREFIX = 'bench-dialect-'
/** Attributes a list returns (the events repository's LISTED_ATTRIBUTES: all but `raw`). */
const LISTED = ['id', 'entity', 'dedup_key', 'source', 'detail_type', 'account_id', 'region', 'resources', 'resource_count', 'title', 'description',
  'severity', 'native_severity', 'source_state', 'status', 'occurrence_count', 'occurred_at', 'last_seen_at', 'occurred_sk', 'seen_sk', 'resolved_at',
  'task_id', 'labels', 'version', 'ttl', 'created_at', 'updated_at', 'deleted_at', 'deleted_by']
const STATUSES = ['open', 'in_progress', 'closed'] as const
const PRIORITIES = ['critical', 'high', 'medium', 'low'] as const

async function inParallel (count: number, concurrency: number, each: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) await each(next++)
  }))
}

interface Sample { calls: number, ms: number, cpu: number, main: number, latencies: number[] }

/**
 * The main thread's own CPU time in µs (Linux per-thread counters); undefined elsewhere, then
 * the main thread's busy time (event-loop utilization, which also counts time the thread was
 * runnable but not running) stands in for it.
 */
const mainThreadCpu = (): number | undefined => threadCpuMicros(`/proc/self/task/${process.pid}/stat`)

async function timed (call: Call, seconds: number, concurrency: number): Promise<Sample> {
  const latencies: number[] = []
  const cpu0 = process.cpuUsage()
  const main0 = mainThreadCpu()
  const elu0 = performance.eventLoopUtilization()
  const t0 = performance.now()
  const deadline = t0 + seconds * 1000
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    for (let n = 0; performance.now() < deadline; n++) {
      const started = performance.now()
      await call(worker, n)
      latencies.push(performance.now() - started)
    }
  }))
  const ms = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  const elu = performance.eventLoopUtilization(elu0)
  const main1 = mainThreadCpu()
  const main = main0 !== undefined && main1 !== undefined ? main1 - main0 : elu.active * 1000
  return { calls: latencies.length, ms, cpu: cpu.user + cpu.system, main, latencies }
}

function figures (samples: Sample[]): DialectFigures {
  const calls = samples.reduce((s, x) => s + x.calls, 0)
  const ms = samples.reduce((s, x) => s + x.ms, 0)
  const all = Float64Array.from(samples.flatMap(x => x.latencies)).sort()
  return {
    calls,
    seconds: ms / 1000,
    perSecond: calls / (ms / 1000),
    mean: all.reduce((s, v) => s + v, 0) / all.length,
    p99: percentile(all, 99),
    cpu: samples.reduce((s, x) => s + x.cpu, 0) / calls,
    main: samples.reduce((s, x) => s + x.main, 0) / calls
  }
}

export async function measureDialects (opts: DialectOptions): Promise<DialectRun> {
  const notes: string[] = []
  const embedded = await startEmbeddedDynamo({ path: opts.dir })
  let client: DynamoDB | undefined
  try {
    client = createDynamoClient(embedded.endpoint, 'us-east-1')
    // As src/plugins/dynamo.ts: Dynamoose's client is process-wide.
    dynamoose.aws.ddb.set(client)
    const models = getModels(PREFIX)
    await initializeTables(client, models, { create: true })
    const raw = createRawClient(client)
    const tasksTable = models.tasks.table().name
    const TaskModel = models.tasks
    const eventsTable = models.events.table().name

    // Seed through the models: the generated items (the repositories' shapes), as Dynamoose writes them.
    const seedStarted = performance.now()
    const taskItems = Array.from({ length: opts.tasks }, (_, n) => fromAttributes(task(n).item) as unknown as TaskItem)
    const eventItems = Array.from({ length: opts.events }, (_, n) => fromAttributes(event(n).item) as unknown as EventItem)
    await inParallel(taskItems.length, 8, i => models.tasks.create(taskItems[i]!, { overwrite: false }))
    await inParallel(eventItems.length, 8, i => models.events.create(eventItems[i]!, { overwrite: false }))
    notes.push(`seeded ${taskItems.length} tasks and ${eventItems.length} events through the Dynamoose models in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`)
    opts.log(`dialect: ${notes[0]}`)

    const taskIds = taskItems.map(t => t.id)
    const versions = new Map(taskItems.map(t => [t.id, t.version]))
    // Each worker updates its own tasks, so every conditional write is pinned to the version it knows.
    const owned = Array.from({ length: opts.concurrency }, (_, w) => taskIds.filter((_, i) => i % opts.concurrency === w))
    const templates = taskItems.slice(0, 50)
    // The middle 80 % of the seeded events' times: a page of 20 of an account lies inside it.
    const times = eventItems.map(e => e.occurred_at).sort()
    const from = times[Math.floor(times.length * 0.1)]!
    const to = times[Math.floor(times.length * 0.9)]!
    const nowS = (): number => Math.floor(Date.now() / 1000)
    let reads = 0
    const nextId = (): string => taskIds[(reads++ * 7) % taskIds.length]!
    const newTaskItem = (n: number): TaskItem => {
      const t = templates[n % templates.length]!
      return { ...t, id: newId(), status_history: t.status_history.map(h => ({ ...h })) } as TaskItem
    }
    const updateOf = (worker: number, n: number): { id: string, version: number, title: string, priority: string, updated: string } => {
      const mine = owned[worker]!
      const id = mine[n % mine.length]!
      return { id, version: versions.get(id)!, title: `Investigate issue, pass ${n}`, priority: PRIORITIES[n % PRIORITIES.length]!, updated: new Date().toISOString() }
    }
    const updated = (id: string, version: number): void => { versions.set(id, version + 1) }

    const operations: Operation[] = [
      {
        name: 'GetItem: a task by id',
        request: 'GetItem, ConsistentRead',
        calls: {
          dynamoose: () => models.tasks.get({ id: nextId() }, { consistent: true }),
          bare: () => raw.getItem<TaskItem>(tasksTable, { id: nextId() })
        }
      },
      {
        name: 'Query: tasks by status, page of 20',
        request: 'GSI `status-id-index`, status = :s, filter attribute_not_exists(deleted_at), newest first, Limit 20',
        calls: {
          dynamoose: (_w, n) => models.tasks.query('status').eq(STATUSES[n % 3]).using('status-id-index')
            .and().where('deleted_at').not().exists().sort('descending').limit(20).exec(),
          bare: (_w, n) => raw.queryPage<TaskItem>({
            table: tasksTable,
            index: 'status-id-index',
            key: { partition: ['status', STATUSES[n % 3]] },
            filter: where.notExists('deleted_at'),
            forward: false,
            limit: 20
          })
        }
      },
      {
        name: 'Query: events by account and time, page of 20',
        request: 'GSI `account-occurred-index`, account_id = :a AND occurred_sk BETWEEN, filter attribute_not_exists(deleted_at) AND ttl > :now, projection of the 29 listed attributes, newest first, Limit 20',
        calls: {
          dynamoose: (_w, n) => models.events.query('account_id').eq(ACCOUNTS[n % ACCOUNTS.length]).and().where('occurred_sk').between(from, to)
            .and().where('deleted_at').not().exists().and().where('ttl').gt(nowS())
            .using('account-occurred-index').attributes(LISTED).sort('descending').limit(20).exec(),
          bare: (_w, n) => raw.queryPage<EventItem>({
            table: eventsTable,
            index: 'account-occurred-index',
            key: { partition: ['account_id', ACCOUNTS[n % ACCOUNTS.length]], sort: { name: 'occurred_sk', op: 'between', value: from, to } },
            filter: where.and(where.notExists('deleted_at'), where.gt('ttl', nowS())),
            attributes: [...LISTED],
            forward: false,
            limit: 20
          })
        }
      },
      {
        name: 'UpdateItem: conditional (version), SET 3, ADD version',
        request: 'UpdateItem, condition attribute_exists(id) AND attribute_not_exists(deleted_at) AND version = :v, SET title, priority, updated_at ADD version 1, ReturnValues NONE',
        calls: {
          dynamoose: async (w, n) => {
            const u = updateOf(w, n)
            await models.tasks.update({ id: u.id }, { $SET: { title: u.title, priority: u.priority, updated_at: u.updated }, $ADD: { version: 1 } } as never, {
              condition: new dynamoose.Condition('id').exists().and().where('deleted_at').not().exists().and().where('version').eq(u.version),
              returnValues: 'NONE'
            })
            updated(u.id, u.version)
          },
          bare: async (w, n) => {
            const u = updateOf(w, n)
            await raw.updateItem(tasksTable, { id: u.id }, { set: { title: u.title, priority: u.priority, updated_at: u.updated }, add: { version: 1 } }, {
              condition: where.and(where.exists('id'), where.notExists('deleted_at'), where.eq('version', u.version)),
              returnValues: 'NONE'
            })
            updated(u.id, u.version)
          }
        }
      },
      {
        name: 'PutItem: a new task, conditional',
        request: 'PutItem of a task item (12–15 attributes, with its status history), condition attribute_not_exists(id)',
        calls: {
          dynamoose: (_w, n) => new TaskModel(newTaskItem(n)).save({ overwrite: false, return: 'item' }),
          bare: (_w, n) => raw.putItem(tasksTable, newTaskItem(n) as unknown as Record<string, unknown>, { condition: where.notExists('id') })
        }
      }
    ]

    // The two dialects must do the same thing: same answers, same effects.
    await check(notes, operations, { models, raw, tasksTable, taskIds, versions })
    opts.log(`dialect: the two dialects agree (${notes.length - 1} checks)`)

    const samples = new Map(operations.map(op => [op.name, { dynamoose: [] as Sample[], bare: [] as Sample[] }]))
    for (const op of operations) for (const d of DIALECTS) await timed(op.calls[d], Math.min(0.5, opts.seconds), opts.concurrency)
    for (let round = 0; round < opts.rounds; round++) {
      const order = round % 2 === 0 ? DIALECTS : [...DIALECTS].reverse()
      for (const op of operations) {
        for (const d of order) samples.get(op.name)![d].push(await timed(op.calls[d], opts.seconds, opts.concurrency))
      }
      opts.log(`dialect: round ${round + 1} of ${opts.rounds} done`)
    }
    return {
      results: operations.map(op => ({ operation: op.name, request: op.request, dynamoose: figures(samples.get(op.name)!.dynamoose), bare: figures(samples.get(op.name)!.bare) })),
      notes
    }
  } finally {
    client?.destroy()
    await embedded.close()
  }
}

/** The same item, whatever the order of its attributes (objects compared by their sorted entries). */
const canonical = (value: unknown): string => JSON.stringify(value, (_k, v: unknown) =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v)

/** One call of each dialect per operation, compared: the same answers, the same effects. */
async function check (notes: string[], operations: Operation[], ctx: { models: ReturnType<typeof getModels>, raw: ReturnType<typeof createRawClient>, tasksTable: string, taskIds: string[], versions: Map<string, number> }): Promise<void> {
  const fail = (what: string): never => { throw new Error(`dialect bench: the two dialects disagree on ${what}`) }
  const ids = (items: unknown): string[] => (Array.isArray(items) ? items : (items as { items: unknown[] }).items).map(i => String((i as { id: string }).id))
  const [get, tasksQuery, eventsQuery, update, put] = operations as [Operation, Operation, Operation, Operation, Operation]
  const id = ctx.taskIds[0]!
  const viaModel = await ctx.models.tasks.get({ id }, { consistent: true })
  const viaRaw = await ctx.raw.getItem<Record<string, unknown>>(ctx.tasksTable, { id })
  if (!viaModel || canonical(viaModel.toJSON()) !== canonical(viaRaw)) fail(`${get.name}: ${canonical(viaModel?.toJSON())} vs ${canonical(viaRaw)}`)
  notes.push(`${get.name}: both read the same item (every attribute equal)`)
  for (const op of [tasksQuery, eventsQuery]) {
    const x = ids(await op.calls.dynamoose(0, 1))
    const y = ids(await op.calls.bare(0, 1))
    if (x.length !== 20 || x.join() !== y.join()) fail(`${op.name}: ${x.length} vs ${y.length} items, ${x.slice(0, 3).join()} vs ${y.slice(0, 3).join()}`)
    notes.push(`${op.name}: both return the same 20 items in the same order`)
  }
  const before = ctx.versions.get(id)!
  await update.calls.dynamoose(0, 0)
  await update.calls.bare(0, 0)
  const after = await ctx.raw.getItem<{ version: number }>(ctx.tasksTable, { id })
  if (after?.version !== before + 2 || ctx.versions.get(id) !== before + 2) fail(`${update.name}: version ${before} → ${after?.version}`)
  notes.push(`${update.name}: each dialect's write moved the version by one (${before} → ${after?.version})`)
  const newest = async (limit: number): Promise<string[]> => ids(await ctx.raw.queryPage<{ id: string }>({
    table: ctx.tasksTable, index: 'entity-id-index', key: { partition: ['entity', 'task'] }, forward: false, limit
  }))
  const [previous] = await newest(1)
  await put.calls.dynamoose(0, 0)
  await put.calls.bare(0, 0)
  const created = await newest(2)
  if (created.length !== 2 || created.includes(previous ?? '')) fail(`${put.name}: the new items are not the newest tasks`)
  const [p, q] = await Promise.all(created.map(i => ctx.raw.getItem<Record<string, unknown>>(ctx.tasksTable, { id: i })))
  const shape = (item: Record<string, unknown> | null | undefined): string => Object.keys(item ?? {}).filter(k => k !== 'id').sort().join()
  if (shape(p) !== shape(q)) fail(`${put.name}: stored attributes ${shape(p)} vs ${shape(q)}`)
  notes.push(`${put.name}: both stored an item with the same attributes`)
}

/** The figures as a markdown table: each operation's two dialects, then Dynamoose ÷ bare. */
export function dialectTable (results: DialectResult[]): string {
  const fmt = (v: number, digits = 0): string => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
  const ms = (v: number): string => `${v.toFixed(v < 10 ? 2 : 1)} ms`
  const x = (a: number, b: number): string => `×${(a / b).toFixed(2)}`
  const lines = [
    '| operation | dialect | calls/s | mean | p99 | CPU per call, all threads | CPU per call, main thread |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const r of results) {
    const { dynamoose: d, bare: b } = r
    lines.push(`| ${r.operation} | Dynamoose | ${fmt(d.perSecond)} | ${ms(d.mean)} | ${ms(d.p99)} | ${fmt(d.cpu)} µs | ${fmt(d.main)} µs |`)
    lines.push(`|  | bare SDK (src/db/raw.ts) | ${fmt(b.perSecond)} | ${ms(b.mean)} | ${ms(b.p99)} | ${fmt(b.cpu)} µs | ${fmt(b.main)} µs |`)
    lines.push(`|  | *Dynamoose ÷ bare* | ${x(d.perSecond, b.perSecond)} | ${x(d.mean, b.mean)} | ${x(d.p99, b.p99)} | ${x(d.cpu, b.cpu)} | ${x(d.main, b.main)} |`)
  }
  return lines.join('\n')
}
