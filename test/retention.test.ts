/**
 * Expiry keeps the dashboard counters exact: events that leave by TTL (the stream consumer,
 * src/lambda-streams.ts, fed DynamoDB Streams records in the format AWS documents for TTL
 * deletions) or by the retention sweep of the embedded stand-in are taken off the counters
 * once, and the counters equal a recount afterwards. Everything runs against the stand-in: the
 * records are built from the items as stored, and the items are deleted as TTL would.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import type { AttributeValue } from '@aws-sdk/client-dynamodb'
import { build, database, type Api } from './helper.js'
import { loadConfig } from '../src/config.js'
import { recountStats } from '../src/modules/dashboard/recount.js'
import { createExpiryService } from '../src/modules/events/expiry.service.js'
import { close as closeConsumer, createStreamHandler, handler, type StreamEvent, type StreamRecord } from '../src/lambda-streams.js'

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`./fixtures/events/${name}.json`, import.meta.url), 'utf8'))
const silent = { info: () => {}, error: () => {} }

let seq = 0
/** A CloudWatch alarm envelope for `alarmName`, as a new delivery. */
function alarm (alarmName: string, state: 'ALARM' | 'OK', severity?: string) {
  const env = fixture(state === 'ALARM' ? 'cloudwatch-alarm' : 'cloudwatch-ok')
  env.id = `ret-${++seq}`
  env.time = new Date(Date.UTC(2026, 10, 25, 10, 0, seq)).toISOString()
  env.resources = [`arn:aws:cloudwatch:us-east-1:123456789012:alarm:${alarmName}`]
  env.detail.alarmName = alarmName
  if (severity) env.detail.configuration = { ...env.detail.configuration, description: `[severity:${severity}] ${alarmName}` }
  return env
}

/** An app with an AWS account and a few events: returns their ids by name. */
async function withEvents (t: Test, env: Record<string, string> = {}) {
  const api = await build(t, { RETENTION_SWEEP_INTERVAL_SECONDS: '0', ...env })
  const admin = await api.adminToken()
  const created = await api.request({ method: 'POST', url: '/api/config/aws-accounts', headers: api.auth(admin), payload: { account_id: '123456789012', name: 'acct', role_arn: 'arn:aws:iam::123456789012:role/R' } })
  const key = created.json().api_key as string
  const ingest = async (env: object): Promise<string> => {
    const res = await api.request({ method: 'POST', url: '/api/events/ingest', headers: { 'x-api-key': key }, payload: env })
    return res.json().results[0].event_id as string
  }
  const ids = {
    disk: await ingest(alarm('disk', 'ALARM', 'high')),
    cpu: await ingest(alarm('cpu', 'ALARM', 'critical')),
    mem: await ingest(alarm('mem', 'ALARM', 'low')),
    net: await ingest(alarm('net', 'ALARM', 'medium')),
    io: await ingest(alarm('io', 'ALARM', 'info')),
    gd: await ingest({ ...fixture('guardduty-finding'), id: 'ret-gd-1' }),
    sh: await ingest({ ...fixture('securityhub-finding'), id: 'ret-sh-1' })
  }
  await ingest(alarm('net', 'OK')) // net: resolved
  return { api, admin, ids, ingest }
}

const tables = (api: Api) => ({ events: `${api.config.tablePrefix}events`, meta: `${api.config.tablePrefix}meta` })

/** Moves an event's retention end into the past (or anywhere), as time passing would. */
async function setTtl (api: Api, id: string, ttl: number): Promise<void> {
  await api.app.db.raw.updateItem(tables(api).events, { id }, { set: { ttl } })
}
const past = (): number => Math.floor(Date.now() / 1000) - 60

/** The item exactly as DynamoDB stores it (AttributeValue JSON, the stream's image format). */
async function storedImage (api: Api, id: string): Promise<Record<string, AttributeValue>> {
  const { Item } = await api.app.db.client.getItem({ TableName: tables(api).events, Key: { id: { S: id } }, ConsistentRead: true })
  if (!Item) throw new Error(`no item ${id}`)
  return Item
}

/** Deletes items as DynamoDB's TTL process does (no condition). */
async function deleteAsTtl (api: Api, ids: string[]): Promise<void> {
  for (const id of ids) await api.app.db.raw.deleteItem(tables(api).events, { id })
}

let sequence = 4_000_000_000_000_000_000n
/**
 * One DynamoDB Streams record as Lambda delivers it (Lambda developer guide, "Using AWS Lambda
 * with Amazon DynamoDB", and the DynamoDB Streams `Record` type): a TTL deletion carries
 * `userIdentity` `{ type: 'Service', principalId: 'dynamodb.amazonaws.com' }`; a delete by a
 * user (or the service) carries none.
 */
function streamRecord (api: Api, eventName: 'INSERT' | 'MODIFY' | 'REMOVE', image: Record<string, AttributeValue>, by: 'ttl' | 'user'): StreamRecord {
  const table = tables(api).events
  return {
    eventID: randomUUID().replace(/-/g, ''),
    eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    dynamodb: {
      ApproximateCreationDateTime: Math.floor(Date.now() / 1000),
      Keys: { id: image.id! },
      ...(eventName === 'INSERT' ? {} : { OldImage: image }),
      SequenceNumber: String(sequence += 100n),
      SizeBytes: Buffer.byteLength(JSON.stringify(image)),
      StreamViewType: 'OLD_IMAGE'
    },
    eventSourceARN: `arn:aws:dynamodb:us-east-1:111111111111:table/${table}/stream/2026-12-01T00:00:00.000`,
    ...(by === 'ttl' ? { userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' } } : {})
  }
}

/** The live counters against a recount of the items (which then replaces them). */
async function assertCountersEqualRecount (t: Test, api: Api, label: string): Promise<void> {
  const live = await api.app.repos.stats.read(['events'])
  const truth = await recountStats(api.app.repos)
  const keys = new Set([...Object.keys(live.events!), ...Object.keys(truth.events ?? {})])
  const diffs = [...keys].filter(k => k !== 'pk' && (live.events![k] ?? 0) !== (truth.events?.[k] ?? 0)).map(k => `${k}: live ${live.events![k] ?? 0}, recount ${truth.events?.[k] ?? 0}`)
  t.same(diffs, [], `${label}: the event counters equal a recount (raw values, negatives included)`)
}

async function eventsStats (api: Api, admin: string) {
  return (await api.request({ method: 'GET', url: '/api/dashboard/events-stats', headers: api.auth(admin) })).json()
}

t.test('configuration: the sweep is on by default on the embedded stand-in only', async t => {
  t.equal(loadConfig({}).retentionSweepSeconds, 3600, 'embedded: hourly')
  t.equal(loadConfig({ DYNAMODB_ENDPOINT: 'aws' }).retentionSweepSeconds, 0, 'real DynamoDB: TTL and the stream consumer')
  t.equal(loadConfig({ RETENTION_SWEEP_INTERVAL_SECONDS: '0' }).retentionSweepSeconds, 0, '0 turns it off')
  t.equal(loadConfig({ DYNAMODB_ENDPOINT: 'http://localhost:8000', RETENTION_SWEEP_INTERVAL_SECONDS: '60' }).retentionSweepSeconds, 60)
  t.throws(() => loadConfig({ RETENTION_SWEEP_INTERVAL_SECONDS: '-1' }), /RETENTION_SWEEP_INTERVAL_SECONDS/)
})

t.test('stream consumer: TTL removals are counted out once; redelivery, user deletes and soft-deleted events change nothing', async t => {
  const { api, admin, ids } = await withEvents(t)
  const { endpoint } = await database()
  const saved = { DYNAMODB_ENDPOINT: process.env.DYNAMODB_ENDPOINT, TABLE_PREFIX: process.env.TABLE_PREFIX, LOG_LEVEL: process.env.LOG_LEVEL }
  Object.assign(process.env, { DYNAMODB_ENDPOINT: endpoint, TABLE_PREFIX: api.config.tablePrefix, LOG_LEVEL: 'silent' })
  t.teardown(async () => {
    await closeConsumer()
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v
  })

  // gd soft-deleted by an admin (counted out then), then expired like the others.
  t.equal((await api.request({ method: 'DELETE', url: `/api/events/${ids.gd}`, headers: api.auth(admin) })).statusCode, 204)
  const before = await eventsStats(api, admin)
  t.match(before, { total: 6, by_severity: { critical: 1 }, by_status: { resolved: 1 } })

  const expiring = [ids.disk, ids.cpu, ids.net, ids.gd]
  for (const id of expiring) await setTtl(api, id, past())
  const images = Object.fromEntries(await Promise.all(expiring.map(async id => [id, await storedImage(api, id)] as const)))
  t.same((await api.request({ method: 'GET', url: `/api/events/${ids.disk}`, headers: api.auth(admin) })).statusCode, 404, 'an expired event is hidden before it is deleted')
  await deleteAsTtl(api, expiring)

  const live = await storedImage(api, ids.mem)
  const malformed: Record<string, AttributeValue> = { id: { S: 'not-an-event' }, severity: { N: '5' } }
  const records: StreamRecord[] = [
    ...expiring.map(id => streamRecord(api, 'REMOVE', images[id]!, 'ttl')),
    streamRecord(api, 'REMOVE', live, 'user'), // a delete by a user: counted by the service, never here
    streamRecord(api, 'MODIFY', live, 'user'),
    streamRecord(api, 'INSERT', live, 'user'),
    streamRecord(api, 'REMOVE', malformed, 'ttl')
  ]
  const event: StreamEvent = { Records: records }
  const first = await handler(event)
  t.same(first, { batchItemFailures: [{ itemIdentifier: records.at(-1)!.dynamodb!.SequenceNumber }] }, 'only the malformed record is reported, not thrown')

  const after = await eventsStats(api, admin)
  t.match(after, { total: 3, by_severity: { high: before.by_severity.high - 1, critical: 0 }, by_status: { resolved: 0 } }, 'disk, cpu and net (resolved) are counted out; gd (soft-deleted) was already')
  const listed = (await api.request({ method: 'GET', url: '/api/events?limit=100', headers: api.auth(admin) })).json().items
  t.equal(after.total, listed.length, 'the dashboard total is the number of live events')
  await assertCountersEqualRecount(t, api, 'after the TTL removals')

  // Lambda retries from the failed record, and may deliver the whole batch again: nothing changes.
  const again = await handler(event)
  t.same(again.batchItemFailures.length, 1, 'the malformed record fails again')
  t.same(await eventsStats(api, admin), after, 'a redelivered batch changes nothing')
  await handler({ Records: records.slice(0, 2) })
  t.same(await eventsStats(api, admin), after, 'nor does a redelivered part of it')
  await assertCountersEqualRecount(t, api, 'after redeliveries')
})

t.test('stream consumer: a failed counter update is retried, and applied once', async t => {
  const { api, admin, ids } = await withEvents(t)
  await setTtl(api, ids.cpu, past())
  const image = await storedImage(api, ids.cpu)
  await deleteAsTtl(api, [ids.cpu])
  let failNext = true
  const counters = {
    apply: async (pk: string, deltas: Record<string, number>) => {
      if (failNext) {
        failNext = false
        throw Object.assign(new Error('Throughput exceeds the current capacity'), { name: 'ProvisionedThroughputExceededException' })
      }
      await api.app.repos.stats.apply(pk, deltas)
    }
  }
  const handle = createStreamHandler(createExpiryService({ events: api.app.repos.events, counters, log: silent }), silent)
  const record = streamRecord(api, 'REMOVE', image, 'ttl')
  t.same(await handle({ Records: [record] }), { batchItemFailures: [{ itemIdentifier: record.dynamodb!.SequenceNumber }] }, 'the failed record is reported')
  t.equal((await eventsStats(api, admin)).by_severity.critical, 1, 'nothing applied yet')
  t.same(await handle({ Records: [record] }), { batchItemFailures: [] }, 'the retry succeeds (the claim was given back)')
  t.same(await handle({ Records: [record] }), { batchItemFailures: [] })
  t.equal((await eventsStats(api, admin)).by_severity.critical, 0, 'applied once')
  await assertCountersEqualRecount(t, api, 'after the retry')
})

t.test('an event the recount left out (expired, not yet deleted) is not counted out again when TTL deletes it', async t => {
  const { api, admin, ids } = await withEvents(t)
  const before = await eventsStats(api, admin)
  await setTtl(api, ids.disk, past())
  await recountStats(api.app.repos)
  const recounted = await eventsStats(api, admin)
  t.equal(recounted.by_severity.high, before.by_severity.high - 1, 'the recount leaves expired events out')
  const image = await storedImage(api, ids.disk)
  await deleteAsTtl(api, [ids.disk])
  const handle = createStreamHandler(createExpiryService({ events: api.app.repos.events, counters: api.app.repos.stats, log: silent }), silent)
  t.same(await handle({ Records: [streamRecord(api, 'REMOVE', image, 'ttl')] }), { batchItemFailures: [] })
  t.same(await eventsStats(api, admin), recounted, 'its removal changes nothing')
  await assertCountersEqualRecount(t, api, 'after the removal')
})

t.test('retention sweep: expired events are deleted and counted out; an event extended meanwhile is kept', async t => {
  const { api, admin, ids, ingest } = await withEvents(t)
  t.equal((await api.request({ method: 'DELETE', url: `/api/events/${ids.sh}`, headers: api.auth(admin) })).statusCode, 204)
  const before = await eventsStats(api, admin)
  for (const id of [ids.disk, ids.cpu, ids.net, ids.sh, ids.io]) await setTtl(api, id, past())
  const events = api.app.repos.events
  const future = Math.floor(Date.now() / 1000) + 86400
  // io is extended between the sweep's read and its delete (a write that moved its ttl on).
  const store = {
    ...events,
    expiredPage: async (opts: Parameters<typeof events.expiredPage>[0]) => {
      const page = await events.expiredPage(opts)
      if (page.items.some(e => e.id === ids.io)) await setTtl(api, ids.io, future)
      return page
    }
  }
  const expiry = createExpiryService({ events: store, counters: api.app.repos.stats, log: silent })
  const result = await expiry.sweep({ pageSize: 2 })
  t.same(result, { expired: 5, deleted: 4, kept: 1, failed: 0 }, 'in pages of 2: four deleted, the extended one kept')
  for (const id of [ids.disk, ids.cpu, ids.net, ids.sh]) t.equal(await events.get(id), null, `${id} deleted`)
  t.equal((await events.get(ids.io))?.ttl, future, 'the extended event is still there')
  const after = await eventsStats(api, admin)
  t.match(after, { total: 3, by_severity: { critical: 0, high: before.by_severity.high - 1, info: 1 } }, 'mem, io and gd remain')
  const listed = (await api.request({ method: 'GET', url: '/api/events?limit=100', headers: api.auth(admin) })).json().items
  t.equal(after.total, listed.length)
  await assertCountersEqualRecount(t, api, 'after the sweep')
  t.same(await createExpiryService({ events, counters: api.app.repos.stats, log: silent }).sweep(), { expired: 0, deleted: 0, kept: 0, failed: 0 }, 'a second sweep finds nothing')

  // A new trigger of a swept alarm opens a new event (its dedup claim was freed).
  const reopened = await ingest(alarm('disk', 'ALARM', 'high'))
  t.not(reopened, ids.disk, 'a new event')
  t.equal((await eventsStats(api, admin)).by_severity.high, after.by_severity.high + 1)
})

t.test('retention sweeper: runs on its interval in the app, and stops with it', async t => {
  const { api, admin, ids } = await withEvents(t, { RETENTION_SWEEP_INTERVAL_SECONDS: '1' })
  await setTtl(api, ids.cpu, past())
  const deadline = Date.now() + 10_000
  while (await api.app.repos.events.get(ids.cpu) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(await api.app.repos.events.get(ids.cpu), null, 'the expired event was swept within seconds')
  t.equal((await eventsStats(api, admin)).by_severity.critical, 0, 'and counted out')
  await assertCountersEqualRecount(t, api, 'after the scheduled sweep')
})
