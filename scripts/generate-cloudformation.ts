/**
 * Generates the infrastructure of the tables from the Dynamoose models (src/db/tables.ts),
 * so the deployed tables cannot drift from what the code queries:
 *   deploy/cloudformation/tables.yaml  CloudFormation: one AWS::DynamoDB::Table per model
 *                                      (keys, attribute definitions and GSIs exactly as in
 *                                      Dynamoose's CreateTable request), TTL on `ttl` where
 *                                      the model has that attribute, a stream where the model
 *                                      declares one, PITR, SSE, Retain, and
 *                                      the service's least-privilege IAM managed policy
 *   deploy/iam/service-policy.json     the same policy as plain JSON, for deployments that
 *                                      create the tables with `npm run create-tables`
 *
 *   tsx scripts/generate-cloudformation.ts          write the files
 *   tsx scripts/generate-cloudformation.ts --check  exit 1 when a committed file is stale
 *
 * The template uses the long form of the intrinsic functions (`Fn::Sub`, `Ref`,
 * `Fn::GetAtt`): plain YAML that any parser reads, and CloudFormation accepts it as is.
 * It is written with YAML 1.1 quoting, so values such as `2010-09-09` stay strings for
 * YAML 1.1 readers (dates there) as well.
 */
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { stringify } from 'yaml'
import { DEFAULT_PREFIX, describeTables, serviceStatements, type TableSpec } from './lib/table-definitions.js'

// The derivation from the models lives in scripts/lib/table-definitions.ts (shared with infra/).
export { DEFAULT_PREFIX, SCANNED_TABLES, SERVICE_ACTIONS, describeTables, modelAttributes, type TableSpec } from './lib/table-definitions.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const templatePath = path.join(root, 'deploy', 'cloudformation', 'tables.yaml')
export const policyPath = path.join(root, 'deploy', 'iam', 'service-policy.json')

type Json = Record<string, any>

const sub = (s: string): Json => ({ 'Fn::Sub': s })
const arnOf = (t: TableSpec): Json => ({ 'Fn::GetAtt': [t.logicalId, 'Arn'] })
const exportName = (name: string): Json => sub(`\${AWS::StackName}-${name}`)

function tableResource (t: TableSpec): Json {
  const r = t.request
  const properties: Json = {
    TableName: sub(`\${TablePrefix}${t.suffix}`),
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: r.AttributeDefinitions,
    KeySchema: r.KeySchema
  }
  if (r.GlobalSecondaryIndexes?.length) properties.GlobalSecondaryIndexes = r.GlobalSecondaryIndexes
  properties.PointInTimeRecoverySpecification = { PointInTimeRecoveryEnabled: true }
  properties.SSESpecification = { SSEEnabled: true }
  properties.DeletionProtectionEnabled = true
  if (t.ttl) properties.TimeToLiveSpecification = { AttributeName: 'ttl', Enabled: true }
  if (t.stream) properties.StreamSpecification = { StreamViewType: t.stream }
  properties.Tags = [{ Key: 'service', Value: 'cloud-monitoring-api' }]
  return {
    Type: 'AWS::DynamoDB::Table',
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
    Properties: properties
  }
}

/** Policy statements with the resources rendered by `table` (ARN) and `indexes` (ARN/index/*). */
function statements<T> (tables: TableSpec[], table: (t: TableSpec) => T, indexes: (t: TableSpec) => T): Json[] {
  return serviceStatements(tables, table, t => [indexes(t)]).map(s => ({ Sid: s.sid, Effect: 'Allow', Action: s.actions, Resource: s.resources }))
}

export function buildTemplate (tables: TableSpec[]): Json {
  const resources: Json = {}
  for (const t of tables) resources[t.logicalId] = tableResource(t)
  resources.ServicePolicy = {
    Type: 'AWS::IAM::ManagedPolicy',
    Properties: {
      Description: 'cloud-monitoring-api: least-privilege access to its DynamoDB tables (attach to the ECS task role or the Lambda execution role)',
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: statements(tables, arnOf, t => sub(`\${${t.logicalId}.Arn}/index/*`))
      }
    }
  }
  const outputs: Json = {}
  for (const t of tables) {
    outputs[`${t.logicalId}Name`] = {
      Description: `Name of the ${t.suffix} table`,
      Value: { Ref: t.logicalId },
      Export: { Name: exportName(`${t.logicalId}Name`) }
    }
    outputs[`${t.logicalId}Arn`] = {
      Description: `ARN of the ${t.suffix} table`,
      Value: arnOf(t),
      Export: { Name: exportName(`${t.logicalId}Arn`) }
    }
    if (t.stream) {
      outputs[`${t.logicalId}StreamArn`] = {
        Description: `ARN of the ${t.suffix} table's stream (the expiry consumer reads it: docs/deployment.md)`,
        Value: { 'Fn::GetAtt': [t.logicalId, 'StreamArn'] },
        Export: { Name: exportName(`${t.logicalId}StreamArn`) }
      }
    }
  }
  outputs.ServicePolicyArn = {
    Description: 'IAM managed policy to attach to the role the service runs with',
    Value: { Ref: 'ServicePolicy' },
    Export: { Name: exportName('ServicePolicyArn') }
  }
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: 'cloud-monitoring-api: DynamoDB tables (generated from the Dynamoose models) and the service IAM policy',
    Parameters: {
      TablePrefix: {
        Type: 'String',
        Default: DEFAULT_PREFIX,
        // The pattern of TABLE_PREFIX in src/config.ts: set the same value in the service.
        AllowedPattern: '^[A-Za-z0-9_.-]{0,64}$',
        Description: 'Prefix of every table name; the service must run with the same TABLE_PREFIX'
      }
    },
    Resources: resources,
    Outputs: outputs
  }
}

/** The policy as a standalone document: REGION and ACCOUNT_ID are placeholders to replace. */
export function buildPolicy (tables: TableSpec[]): Json {
  const arn = (t: TableSpec) => `arn:aws:dynamodb:REGION:ACCOUNT_ID:table/${DEFAULT_PREFIX}${t.suffix}`
  return { Version: '2012-10-17', Statement: statements(tables, arn, t => `${arn(t)}/index/*`) }
}

const YAML_HEADER = [
  '# Generated by scripts/generate-cloudformation.ts from the Dynamoose models (src/db/tables.ts).',
  '# Do not edit by hand: change a model and run `npm run generate:cfn` (CI: `npm run generate:cfn:check`).',
  '#',
  '#   aws cloudformation deploy --stack-name cloud-monitoring-tables \\',
  '#     --template-file deploy/cloudformation/tables.yaml --capabilities CAPABILITY_IAM \\',
  '#     --parameter-overrides TablePrefix=monitoring-',
  ''
].join('\n')

/** Every generated file, by path relative to the repository root. */
export async function generate (): Promise<Record<string, string>> {
  const tables = await describeTables()
  return {
    [path.relative(root, templatePath)]: YAML_HEADER + stringify(buildTemplate(tables), { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false }),
    [path.relative(root, policyPath)]: JSON.stringify(buildPolicy(tables), null, 2) + '\n'
  }
}

async function main (): Promise<void> {
  const check = process.argv.includes('--check')
  const files = await generate()
  const stale: string[] = []
  for (const [name, text] of Object.entries(files)) {
    const file = path.join(root, name)
    if (check) {
      const current = await readFile(file, 'utf8').catch(() => '')
      if (current !== text) stale.push(name)
    } else {
      await mkdir(path.dirname(file), { recursive: true })
      await writeFile(file, text)
    }
  }
  if (stale.length) {
    console.error(`Generated deployment files are stale: ${stale.join(', ')}. Run \`npm run generate:cfn\` and commit the result.`)
    process.exit(1)
  }
  console.log(check ? 'generated deployment files are up to date' : `wrote ${Object.keys(files).join(', ')}`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch(err => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
