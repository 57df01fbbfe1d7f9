/**
 * The service's DynamoDB tables as infrastructure sees them, derived from the Dynamoose models
 * (src/db/tables.ts) and from nothing else, so the deployed tables cannot drift from what the
 * code queries. Shared by the CloudFormation generator (scripts/generate-cloudformation.ts)
 * and the CDK app (infra/): keys, attribute definitions and GSIs exactly as in Dynamoose's own
 * CreateTable request, TTL on `ttl` where the model declares it, a stream where the model
 * declares one (`streamOptions`: the events table, for the expiry consumer), and the service's
 * least-privilege IAM statements.
 *
 * This is the one module outside src/ that imports the models (`getModels`): if that function
 * moves, fix the import in `describeTables` below.
 */
import { createRequire } from 'node:module'
import type { CreateTableInput } from '@aws-sdk/client-dynamodb'
import type { Models } from '../../src/data.js'

export type { Models }

/** The default of TABLE_PREFIX (src/config.ts) and of the template's parameter. */
export const DEFAULT_PREFIX = 'monitoring-'
/** Models are defined under this prefix here; table names are re-prefixed by the templates. */
const MODEL_PREFIX = 'cfn-template-'

/**
 * Tables the maintenance scripts read with Scan (`npm run recount-stats`:
 * src/modules/dashboard/recount.ts via the repositories' `scanAll` and `stats.keys`; the
 * retention sweep, on by default only on the embedded stand-in, and `npm run sweep-retention`:
 * events, `expiredPage`).
 * No request path scans (docs/architecture: "never a Scan on a request path"); the test
 * checks this list against the `.scan(` calls in src/.
 */
export const SCANNED_TABLES = ['users', 'tasks', 'events', 'stats'] as const satisfies ReadonlyArray<keyof Models>

/** What the service calls on every table (and its indexes). No Scan, no table management. */
export const SERVICE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:Query',
  'dynamodb:BatchGetItem',
  'dynamodb:BatchWriteItem',
  'dynamodb:DescribeTable'
]

export interface TableSpec {
  /** Key in getModels(): users, auth, … */
  model: keyof Models
  /** Table name without the prefix: users, task-comments, … */
  suffix: string
  /** CloudFormation logical id: UsersTable, TaskCommentsTable, … */
  logicalId: string
  /** Dynamoose's CreateTable request (under MODEL_PREFIX). */
  request: CreateTableInput
  /** The model declares a `ttl` attribute (epoch seconds). */
  ttl: boolean
  /** The model's stream (Dynamoose `streamOptions`): what its records carry; undefined: none. */
  stream: 'NEW_IMAGE' | 'OLD_IMAGE' | 'NEW_AND_OLD_IMAGES' | 'KEYS_ONLY' | undefined
  scanned: boolean
}

// Dynamoose exposes a model's schemas only through its internal-properties symbol.
const internalProperties: symbol = createRequire(import.meta.url)('dynamoose/dist/Internal.js').default.General.internalProperties

interface SchemaLike { attributes: () => string[], getAttributeType: (key: string) => string }

/** Top-level attributes a model declares, with their DynamoDB types (S, N, …). */
export function modelAttributes (model: Models[keyof Models]): Map<string, string> {
  const schemas = (model as unknown as { Model: { getInternalProperties: (key: symbol) => { schemas: SchemaLike[] } } })
    .Model.getInternalProperties(internalProperties).schemas
  const out = new Map<string, string>()
  for (const schema of schemas) {
    for (const name of schema.attributes()) if (!name.includes('.')) out.set(name, schema.getAttributeType(name))
  }
  return out
}

const pascal = (s: string): string => s.split(/[^A-Za-z0-9]+/).filter(Boolean).map(w => w[0]!.toUpperCase() + w.slice(1)).join('')

/** One entry per model, in getModels() order, from the requests Dynamoose would send. */
export async function describeTables (): Promise<TableSpec[]> {
  // Loaded here so the SDK's Node-version notice can be silenced first (it fires on import).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const { getModels } = await import('../../src/data.js')
  const models = getModels(MODEL_PREFIX)
  const specs: TableSpec[] = []
  for (const [key, model] of Object.entries(models) as Array<[keyof Models, Models[keyof Models]]>) {
    const request = await model.table().create({ return: 'request' }) as unknown as CreateTableInput
    const name = request.TableName ?? ''
    if (!name.startsWith(MODEL_PREFIX)) throw new Error(`model ${key}: table name ${name} does not start with the prefix`)
    if (request.BillingMode !== 'PAY_PER_REQUEST') throw new Error(`model ${key}: expected throughput ON_DEMAND (BillingMode PAY_PER_REQUEST)`)
    if (request.LocalSecondaryIndexes?.length) throw new Error(`model ${key}: local secondary indexes are not supported by this generator`)
    const attributes = modelAttributes(model)
    const ttlType = attributes.get('ttl')
    // DynamoDB ignores a TTL attribute that is not a Number (epoch seconds).
    if (ttlType !== undefined && ttlType !== 'N') throw new Error(`model ${key}: attribute ttl must be a Number (epoch seconds), has DynamoDB type ${ttlType}`)
    const suffix = name.slice(MODEL_PREFIX.length)
    specs.push({
      model: key,
      suffix,
      logicalId: `${pascal(suffix)}Table`,
      request,
      ttl: ttlType !== undefined,
      stream: request.StreamSpecification?.StreamEnabled ? request.StreamSpecification.StreamViewType : undefined,
      scanned: (SCANNED_TABLES as readonly string[]).includes(key)
    })
  }
  return specs
}

export interface ServiceStatement<R> {
  sid: string
  actions: string[]
  resources: R[]
}

/**
 * The service's IAM statements, with resources rendered by the caller: `table` gives a
 * table's ARN, `indexes` the ARNs of its GSIs (called only for tables that have some).
 * Allows only; no table management, no wildcard action.
 */
export function serviceStatements<R> (tables: TableSpec[], table: (t: TableSpec) => R, indexes: (t: TableSpec) => R[]): Array<ServiceStatement<R>> {
  return [
    {
      sid: 'ServiceReadWrite',
      actions: [...SERVICE_ACTIONS],
      resources: tables.flatMap(t => (t.request.GlobalSecondaryIndexes?.length ? [table(t), ...indexes(t)] : [table(t)]))
    },
    {
      // Only `npm run recount-stats` scans (full rebuild of the dashboard counters); it runs
      // with the service's configuration, hence with this policy.
      sid: 'MaintenanceScan',
      actions: ['dynamodb:Scan'],
      resources: tables.filter(t => t.scanned).map(table)
    }
  ]
}
