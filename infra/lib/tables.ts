import { RemovalPolicy } from 'aws-cdk-lib'
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb'
import type { Construct } from 'constructs'
import type { KeySchemaElement } from '@aws-sdk/client-dynamodb'
import type { TableSpec } from '../../scripts/lib/table-definitions.js'

export interface ServiceTable {
  spec: TableSpec
  table: dynamodb.Table
}

const ATTRIBUTE_TYPES: Record<string, dynamodb.AttributeType> = {
  S: dynamodb.AttributeType.STRING,
  N: dynamodb.AttributeType.NUMBER,
  B: dynamodb.AttributeType.BINARY
}

/** The partition and sort key of a key schema, typed from the request's attribute definitions. */
function keys (spec: TableSpec, schema: KeySchemaElement[] | undefined): { partitionKey: dynamodb.Attribute, sortKey?: dynamodb.Attribute } {
  const attribute = (name: string | undefined): dynamodb.Attribute => {
    const type = spec.request.AttributeDefinitions?.find(a => a.AttributeName === name)?.AttributeType
    const mapped = type === undefined ? undefined : ATTRIBUTE_TYPES[type]
    if (!name || !mapped) throw new Error(`model ${spec.model}: key attribute ${name} has no attribute definition of type S, N or B`)
    return { name, type: mapped }
  }
  const hash = schema?.find(k => k.KeyType === 'HASH')
  const range = schema?.find(k => k.KeyType === 'RANGE')
  return { partitionKey: attribute(hash?.AttributeName), ...(range ? { sortKey: attribute(range.AttributeName) } : {}) }
}

/**
 * One table per model, from Dynamoose's CreateTable request (scripts/lib/table-definitions.ts):
 * keys, GSIs (keys and projection), TTL on `ttl` where the model declares it, a stream where the
 * model declares one (events: old images, for the expiry consumer); on demand,
 * point-in-time recovery, encryption with the AWS-managed key (aws/dynamodb: no key policy to
 * keep, no KMS permissions on the service's role, every use in CloudTrail; a customer key is
 * only worth its cost for cross-account access or crypto-shredding, which this data does not
 * need). Logical ids are those of deploy/cloudformation/tables.yaml. `prod`: deletion
 * protection and Retain; other stages are disposable (`cdk destroy` deletes their tables).
 */
export function defineTables (scope: Construct, specs: TableSpec[], opts: { prefix: string, prod: boolean }): ServiceTable[] {
  return specs.map(spec => {
    const table = new dynamodb.Table(scope, spec.logicalId, {
      tableName: `${opts.prefix}${spec.suffix}`,
      ...keys(spec, spec.request.KeySchema),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: opts.prod,
      removalPolicy: opts.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      ...(spec.ttl ? { timeToLiveAttribute: 'ttl' } : {}),
      ...(spec.stream ? { stream: dynamodb.StreamViewType[spec.stream] } : {})
    })
    for (const gsi of spec.request.GlobalSecondaryIndexes ?? []) {
      const projection = gsi.Projection?.ProjectionType ?? 'ALL'
      table.addGlobalSecondaryIndex({
        indexName: gsi.IndexName!,
        ...keys(spec, gsi.KeySchema),
        projectionType: projection as dynamodb.ProjectionType,
        ...(gsi.Projection?.NonKeyAttributes?.length ? { nonKeyAttributes: gsi.Projection.NonKeyAttributes } : {})
      })
    }
    const cfn = table.node.defaultChild as dynamodb.CfnTable
    cfn.overrideLogicalId(spec.logicalId)
    return { spec, table }
  })
}
