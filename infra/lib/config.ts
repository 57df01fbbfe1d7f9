import type { Node } from 'constructs'
import { DEFAULT_MEMBER_ROLE_NAME, SERVICE_URL_PATTERN } from '../../src/domain/member-wiring.js'

export { DEFAULT_MEMBER_ROLE_NAME }

/** Where the API runs: Lambda behind API Gateway (default) or ECS Fargate behind an ALB. */
export type Compute = 'lambda' | 'fargate'

/** What `-c key=value` (or cdk.json's `context`) chooses; everything else is derived. */
export interface InfraConfig {
  /** `-c stage=dev|prod|…`: names the service stack (CloudMonitoring-<stage>) and its tables. */
  stage: string
  /** stage `prod`: deletion protection and retention of the tables, longer log retention. */
  prod: boolean
  /** `-c compute=lambda|fargate` (default lambda). */
  compute: Compute
  /** `-c tablePrefix=…` (default `monitoring-<stage>-`): the service's TABLE_PREFIX. */
  tablePrefix: string
  /** `-c alarmEmail=ops@example.com`: subscribes an address to the alarm topic. */
  alarmEmail: string | undefined
  /** `-c memberRoleName=…` (default CloudMonitoringReadOnly): the role the member stack creates. */
  memberRoleName: string
  /** `-c certificateArn=…` (Fargate only): HTTPS on the ALB; without it the ALB listens on HTTP. */
  certificateArn: string | undefined
  /** `-c reservedConcurrency=N` (Lambda only): caps concurrent executions; unset by default. */
  reservedConcurrency: number | undefined
  /**
   * `-c publicBaseUrl=https://…` (a custom domain in front of the API): the service's
   * PUBLIC_BASE_URL and the member stacks' ServiceUrl. Default: the API's own URL (the HTTP
   * API's endpoint, or the ALB's, `https` only with a certificate).
   */
  publicBaseUrl: string | undefined
  /**
   * `-c memberTemplateUrl=https://…`: where the operator published the generic member template
   * (an S3 URL the account owners can read): the service's MEMBER_TEMPLATE_URL, for quick-create
   * links. Default: unset (no links).
   */
  memberTemplateUrl: string | undefined
  /**
   * `-c region=…`, else the CLI's region (CDK_DEFAULT_REGION, from AWS_REGION or the profile;
   * no credentials needed). Optional for Lambda (the stack is then region-agnostic), required
   * for Fargate (ALB access logging names the region's log-delivery principal).
   */
  region: string | undefined
}

const STAGE = /^[a-z][a-z0-9-]{0,19}$/
/** TABLE_PREFIX's pattern in src/config.ts. */
const TABLE_PREFIX = /^[A-Za-z0-9_.-]{0,64}$/
const ROLE_NAME = /^[\w+=,.@-]{1,64}$/
/** The member stack's ServiceUrl pattern: https, no trailing slash. */
const SERVICE_URL = new RegExp(SERVICE_URL_PATTERN)

function text (node: Node, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key)
  if (value === undefined || value === null || value === '') return undefined
  return String(value)
}

/** Reads and checks the context; a bad value stops the synthesis with the key's name. */
export function readConfig (node: Node): InfraConfig {
  const stage = text(node, 'stage') ?? 'dev'
  if (!STAGE.test(stage)) throw new Error(`context stage=${stage}: lower-case letters, digits and dashes, starting with a letter (at most 20)`)
  const compute = text(node, 'compute') ?? 'lambda'
  if (compute !== 'lambda' && compute !== 'fargate') throw new Error(`context compute=${compute}: lambda or fargate`)
  const tablePrefix = text(node, 'tablePrefix') ?? `monitoring-${stage}-`
  if (!TABLE_PREFIX.test(tablePrefix)) throw new Error(`context tablePrefix=${tablePrefix}: must match ${TABLE_PREFIX} (TABLE_PREFIX in src/config.ts)`)
  const memberRoleName = text(node, 'memberRoleName') ?? DEFAULT_MEMBER_ROLE_NAME
  if (!ROLE_NAME.test(memberRoleName)) throw new Error(`context memberRoleName=${memberRoleName}: not an IAM role name`)
  const concurrency = text(node, 'reservedConcurrency')
  const reservedConcurrency = concurrency === undefined ? undefined : Number(concurrency)
  if (reservedConcurrency !== undefined && !(Number.isInteger(reservedConcurrency) && reservedConcurrency > 0)) throw new Error(`context reservedConcurrency=${concurrency}: a positive integer`)
  const certificateArn = text(node, 'certificateArn')
  if (certificateArn !== undefined && !/^arn:aws[a-z-]*:acm:/.test(certificateArn)) throw new Error('context certificateArn: an ACM certificate ARN')
  const publicBaseUrl = text(node, 'publicBaseUrl')?.replace(/\/+$/, '')
  if (publicBaseUrl !== undefined && !SERVICE_URL.test(publicBaseUrl)) throw new Error(`context publicBaseUrl=${publicBaseUrl}: an https:// URL (host, optional port and path), as the member stacks' ServiceUrl requires`)
  const memberTemplateUrl = text(node, 'memberTemplateUrl')
  if (memberTemplateUrl !== undefined && !/^https:\/\/[^\s/?#]+\/[^\s#]*$/.test(memberTemplateUrl)) throw new Error(`context memberTemplateUrl=${memberTemplateUrl}: an https:// URL of the template (MEMBER_TEMPLATE_URL in src/config.ts)`)
  const region = text(node, 'region') ?? (process.env.CDK_DEFAULT_REGION || undefined)
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new Error(`context region=${region}: not an AWS region`)
  if (compute === 'fargate' && region === undefined) throw new Error('compute=fargate needs a region: -c region=eu-west-1 (or AWS_REGION / the profile\'s region)')
  return {
    stage,
    prod: stage === 'prod',
    compute,
    tablePrefix,
    alarmEmail: text(node, 'alarmEmail'),
    memberRoleName,
    certificateArn,
    reservedConcurrency,
    publicBaseUrl,
    memberTemplateUrl,
    region
  }
}
