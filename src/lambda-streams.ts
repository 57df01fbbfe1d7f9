import './env.js'
import { randomBytes } from 'node:crypto'
import type { AttributeValue, DynamoDB } from '@aws-sdk/client-dynamodb'
import { unmarshall } from '@aws-sdk/util-dynamodb'
import pino from 'pino'
import { loadConfig } from './config.js'
import { createRepositories, getModels } from './data.js'
import { createDynamoClient } from './db/client.js'
import { createCursorCodec } from './db/pagination.js'
import { createRawClient } from './db/raw.js'
import { createExpiryService, type ExpiryOutcome, type ExpiryService } from './modules/events/expiry.service.js'

/**
 * AWS Lambda entry of the expiry consumer: the events table's DynamoDB stream (old images),
 * filtered by the event source mapping to removals by TTL (infra/lib/expiry-consumer.ts). Each
 * such record goes through the events module's one expiry path (`removed`: claim, then the
 * counter decrement), so a redelivered record changes nothing. Handler `index.handler` of its
 * bundle. It builds the data layer from the API's configuration (src/config.ts, src/data.ts)
 * without Fastify: no routes, no JWT secret, no table set-up.
 *
 * Records are checked here too (the mapping's filter is the first guard, not the only one):
 * only REMOVE records whose user identity is DynamoDB's TTL service count; a user delete has
 * no user identity, and the service counted it when it wrote it. A record that cannot be
 * processed is reported in `batchItemFailures` (ReportBatchItemFailures): Lambda retries from
 * it, and after the mapping's retries it goes to the dead-letter queue.
 */

/** A DynamoDB Streams record as Lambda delivers it (the fields this consumer reads). */
export interface StreamRecord {
  eventID?: string
  eventName?: 'INSERT' | 'MODIFY' | 'REMOVE'
  eventVersion?: string
  eventSource?: string
  eventSourceARN?: string
  awsRegion?: string
  userIdentity?: { type?: string, principalId?: string }
  dynamodb?: {
    ApproximateCreationDateTime?: number
    Keys?: Record<string, AttributeValue>
    OldImage?: Record<string, AttributeValue>
    NewImage?: Record<string, AttributeValue>
    SequenceNumber?: string
    SizeBytes?: number
    StreamViewType?: string
  }
}

export interface StreamEvent { Records: StreamRecord[] }

/** The partial batch response (the mapping's ReportBatchItemFailures). */
export interface StreamBatchResponse { batchItemFailures: Array<{ itemIdentifier: string }> }

/** DynamoDB's TTL service, as removal records name it (DynamoDB developer guide: "DynamoDB Streams and Time to Live"). */
export const TTL_IDENTITY = { type: 'Service', principalId: 'dynamodb.amazonaws.com' } as const

export const isTtlRemoval = (record: StreamRecord): boolean =>
  record.eventName === 'REMOVE' && record.userIdentity?.type === TTL_IDENTITY.type && record.userIdentity.principalId === TTL_IDENTITY.principalId

/** Records processed at once (each is a few small writes; the claims make the order irrelevant). */
const CONCURRENCY = 8

export interface StreamLog {
  info: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

/** The handler over an expiry service (the entry below, and tests with their own). */
export function createStreamHandler (expiry: Pick<ExpiryService, 'removed'>, log: StreamLog) {
  return async (event: StreamEvent): Promise<StreamBatchResponse> => {
    const records = event.Records ?? []
    const counts: Record<ExpiryOutcome | 'ignored' | 'failed', number> = { applied: 0, duplicate: 0, uncounted: 0, ignored: 0, failed: 0 }
    const failures: string[] = []
    const one = async (record: StreamRecord): Promise<void> => {
      if (!isTtlRemoval(record)) {
        counts.ignored++
        return
      }
      const sequence = record.dynamodb?.SequenceNumber
      // Without its sequence number a record cannot be reported alone: fail the whole batch.
      if (!sequence) throw new Error(`stream record ${record.eventID ?? '(no eventID)'} has no dynamodb.SequenceNumber`)
      try {
        const image = record.dynamodb?.OldImage
        if (!image) throw new Error('a TTL removal without an old image (the stream must carry OLD_IMAGE or NEW_AND_OLD_IMAGES)')
        counts[await expiry.removed(unmarshall(image))]++
      } catch (err) {
        counts.failed++
        failures.push(sequence)
        log.error({ err, eventID: record.eventID, sequence }, 'expired event not counted out; reported for retry')
      }
    }
    const queue = [...records]
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
      for (let record = queue.shift(); record; record = queue.shift()) await one(record)
    }))
    log.info({ records: records.length, ...counts }, 'expiry stream batch')
    // Lambda resumes from the lowest reported sequence number; report in stream order.
    const order = new Map(records.map((r, i) => [r.dynamodb?.SequenceNumber, i]))
    failures.sort((a, b) => (order.get(a) ?? 0) - (order.get(b) ?? 0))
    return { batchItemFailures: failures.map(itemIdentifier => ({ itemIdentifier })) }
  }
}

interface Instance {
  client: DynamoDB
  handle: (event: StreamEvent) => Promise<StreamBatchResponse>
}

let instance: Promise<Instance> | undefined

async function init (): Promise<Instance> {
  // Real DynamoDB unless an endpoint URL is given (tests); never the embedded stand-in.
  const config = loadConfig({ ...process.env, DYNAMODB_ENDPOINT: process.env.DYNAMODB_ENDPOINT || 'aws' })
  const log = pino({ level: config.logLevel })
  const client = createDynamoClient(config.dynamodbEndpoint!, config.region)
  // The consumer lists nothing: its cursor codec signs nothing anyone sees.
  const db = { client, raw: createRawClient(client), cursors: createCursorCodec(randomBytes(32).toString('hex')) }
  const repos = createRepositories(db, getModels(config.tablePrefix), config.authCache)
  const expiry = createExpiryService({ events: repos.events, counters: repos.stats, log })
  return { client, handle: createStreamHandler(expiry, log) }
}

function ready (): Promise<Instance> {
  instance ??= init().catch((err: unknown) => {
    instance = undefined
    throw err
  })
  return instance
}

export const handler = async (event: StreamEvent): Promise<StreamBatchResponse> => (await ready()).handle(event)

/** Destroys this container's client (tests; Lambda itself just freezes and ends containers). */
export async function close (): Promise<void> {
  const current = instance
  instance = undefined
  if (current) (await current).client.destroy()
}
