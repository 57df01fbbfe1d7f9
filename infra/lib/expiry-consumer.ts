import path from 'node:path'
import { Duration, RemovalPolicy } from 'aws-cdk-lib'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as lambda from 'aws-cdk-lib/aws-lambda'
import { SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources'
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs'
import * as logs from 'aws-cdk-lib/aws-logs'
import * as sqs from 'aws-cdk-lib/aws-sqs'
import { Construct } from 'constructs'
import { ALARM_PERIOD, THRESHOLDS, type ServiceAlarms } from './alarms.js'
import { API_RUNTIME, ROOT, workerBundling } from './bundling.js'
import type { InfraConfig } from './config.js'
import { acknowledge } from './nag.js'
import type { ServiceTable } from './tables.js'

/** DynamoDB's TTL service in a stream record (DynamoDB developer guide, "DynamoDB Streams and Time to Live"). */
export const TTL_REMOVAL_PATTERN = {
  eventName: ['REMOVE'],
  userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] }
}

/** How the mapping reads the stream. */
export const EXPIRY_MAPPING = {
  batchSize: 100,
  /** Then the batch goes to the dead-letter queue (halved first: bisectBatchOnError). */
  retryAttempts: 10,
  /** The stream keeps records 24 hours: nothing older can be read anyway. */
  maxRecordAge: Duration.days(1)
}

/** Dead letters are kept as long as SQS allows: each one is a recount to run (docs/deployment.md). */
export const EXPIRY_DLQ_RETENTION = Duration.days(14)

export interface ExpiryConsumerProps {
  config: InfraConfig
  /** The events table (with its stream), the stats table (counters), the meta table (claims). */
  events: ServiceTable
  stats: ServiceTable
  meta: ServiceTable
  alarms: ServiceAlarms
  logRetention: logs.RetentionDays
}

/**
 * The expiry consumer: DynamoDB's TTL deletes events past their retention, and nothing of the
 * API hears of it; this function reads the events table's stream and takes each event TTL
 * removed off the dashboard counters (src/lambda-streams.ts → the events module's expiry path:
 * claim `expired#<id>` in the meta table, then one ADD on the counters).
 *
 * - The event source mapping passes only REMOVE records of the TTL service (filter criteria:
 *   nothing else invokes the function or is billed); partial batch responses, bisection of a
 *   failing batch, bounded retries, and an encrypted SQS queue for the batches given up on.
 * - Its role may read that stream, update the stats table, put and delete items of the meta
 *   table (claims; a claim is given back when its counter update failed; the dedup claim of the
 *   removed event is freed), write its log group and send to its queue: nothing else.
 * - Alarms: a dead letter, a failed invocation, a stream falling behind.
 */
export class ExpiryConsumer extends Construct {
  readonly fn: NodejsFunction
  readonly deadLetters: sqs.Queue
  readonly mapping: lambda.EventSourceMapping

  constructor (scope: Construct, id: string, props: ExpiryConsumerProps) {
    super(scope, id)
    const { config } = props
    const streamArn = props.events.table.tableStreamArn
    if (!streamArn) throw new Error('the events table has no stream: its model declares one (src/modules/events/events.model.ts, EVENTS_STREAM)')
    const removalPolicy = config.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy })

    this.deadLetters = new sqs.Queue(this, 'DeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: EXPIRY_DLQ_RETENTION
    })
    acknowledge(this.deadLetters, 'AwsSolutions-SQS3', 'This queue is itself the dead-letter destination of the expiry consumer (stream batches it gave up on); a queue behind it would only move the same records again')

    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `cloud-monitoring-api ${config.stage}: the expiry consumer (events stream to dashboard counters)`
    })
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'EventsStreamRead',
      actions: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
      resources: [streamArn]
    }))
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'StreamList',
      actions: ['dynamodb:ListStreams'],
      resources: ['*']
    }))
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'Counters',
      actions: ['dynamodb:UpdateItem'],
      resources: [props.stats.table.tableArn]
    }))
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'ExpiryClaims',
      actions: ['dynamodb:PutItem', 'dynamodb:DeleteItem'],
      resources: [props.meta.table.tableArn]
    }))
    role.addToPolicy(new iam.PolicyStatement({
      sid: 'OwnLogGroup',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn]
    }))
    acknowledge(role, 'AwsSolutions-IAM5[Resource::*]', 'dynamodb:ListStreams supports no resource-level permission (IAM service authorization reference); Lambda\'s stream polling calls it. Reading records is granted on the events table\'s stream only')

    this.fn = new NodejsFunction(this, 'Function', {
      description: `cloud-monitoring-api ${config.stage}: takes events removed by TTL off the dashboard counters (src/lambda-streams.ts)`,
      entry: path.join(ROOT, 'src', 'lambda-streams.ts'),
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: path.join(ROOT, 'package-lock.json'),
      runtime: API_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      // A few small writes per record: no argon2 here, little memory.
      memorySize: 256,
      timeout: Duration.seconds(60),
      role,
      logGroup,
      environment: {
        // NODE_ENV is left unset: production configuration demands JWT_SECRET, which the
        // consumer never uses (it signs nothing).
        NODE_OPTIONS: '--enable-source-maps',
        DYNAMODB_ENDPOINT: 'aws',
        TABLE_PREFIX: config.tablePrefix,
        LOG_LEVEL: 'info'
      },
      bundling: workerBundling()
    })
    acknowledge(this.fn, 'AwsSolutions-L1', `${API_RUNTIME.name} (Node 24 LTS) is the runtime this project verifies the service on (CI runs it on a Node 24 binary); a newer runtime is adopted when that check moves`)

    this.mapping = new lambda.EventSourceMapping(this, 'Mapping', {
      target: this.fn,
      eventSourceArn: streamArn,
      // Every removal the stream still holds: the claims make a record seen twice harmless.
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: EXPIRY_MAPPING.batchSize,
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts: EXPIRY_MAPPING.retryAttempts,
      maxRecordAge: EXPIRY_MAPPING.maxRecordAge,
      onFailure: new SqsDlq(this.deadLetters),
      filters: [lambda.FilterCriteria.filter({
        eventName: lambda.FilterRule.isEqual('REMOVE'),
        userIdentity: { type: lambda.FilterRule.isEqual('Service'), principalId: lambda.FilterRule.isEqual('dynamodb.amazonaws.com') }
      })]
    })

    props.alarms.add('ExpiryDeadLetters', this.deadLetters.metricApproximateNumberOfMessagesVisible({ period: ALARM_PERIOD, statistic: 'Maximum' }), {
      threshold: THRESHOLDS.expiryDeadLetters,
      description: 'Expiry consumer: stream batches given up on (dashboard counters too high: run npm run recount-stats, then purge the queue)'
    })
    props.alarms.add('ExpiryFunctionErrors', this.fn.metricErrors({ period: ALARM_PERIOD, statistic: 'Sum' }), {
      threshold: THRESHOLDS.functionErrors,
      description: 'Failed invocations of the expiry consumer (start failed, time-out, crash)'
    })
    props.alarms.add('ExpiryIteratorAge', this.fn.metric('IteratorAge', { period: ALARM_PERIOD, statistic: 'Maximum' }), {
      threshold: THRESHOLDS.expiryIteratorAgeMs,
      description: `Expiry consumer behind the events stream by ${THRESHOLDS.expiryIteratorAgeMs / 3600000} h or more (records older than 24 h are lost)`
    })
  }
}
