import { Duration, RemovalPolicy } from 'aws-cdk-lib'
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch'
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions'
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as kms from 'aws-cdk-lib/aws-kms'
import * as sns from 'aws-cdk-lib/aws-sns'
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions'
import { Construct } from 'constructs'
import { SCANNED_TABLES, SERVICE_ACTIONS } from '../../scripts/lib/table-definitions.js'
import type { ServiceTable } from './tables.js'

/** Thresholds of the alarms, over 5-minute periods. */
export const THRESHOLDS = {
  /** 5xx answers of the API (API Gateway or the ALB and the targets) per period. */
  serverErrors: 5,
  /** p99 latency in ms, for 3 periods in a row (a login costs ~30 ms of argon2; a cold start ~1–2 s). */
  latencyP99Ms: 3000,
  /** Failed invocations (a start that failed, a time-out): the app answers its own errors. */
  functionErrors: 1,
  functionThrottles: 1,
  /** Throttled DynamoDB requests per table (on demand: a hot key or a sudden doubling). */
  tableThrottles: 5,
  /** Batches of TTL removals the expiry consumer gave up on (each one: counters to recount). */
  expiryDeadLetters: 1,
  /** Age of the oldest stream record the expiry consumer has not processed (the stream keeps 24 h). */
  expiryIteratorAgeMs: 6 * 3600 * 1000
} as const

const PERIOD = Duration.minutes(5)

/** The DynamoDB operations the service calls, as CloudWatch's `Operation` dimension names them. */
export const THROTTLE_OPERATIONS = [...SERVICE_ACTIONS, 'dynamodb:Scan']
  .map(a => a.replace(/^dynamodb:/, ''))
  .filter(op => (Object.values(dynamodb.Operation) as string[]).includes(op)) as dynamodb.Operation[]

/**
 * The alarm topic and the alarms on it. The topic is encrypted with a customer-managed key:
 * CloudWatch cannot publish to a topic encrypted with the AWS-managed aws/sns key (its key
 * policy cannot be changed to let CloudWatch use it).
 */
export class ServiceAlarms extends Construct {
  readonly topic: sns.Topic
  readonly alarms: cloudwatch.Alarm[] = []
  private readonly action: SnsAction

  constructor (scope: Construct, id: string, props: { alarmEmail: string | undefined, prod: boolean, stage: string }) {
    super(scope, id)
    const key = new kms.Key(this, 'TopicKey', {
      description: `cloud-monitoring-api ${props.stage}: encrypts the alarm topic`,
      enableKeyRotation: true,
      removalPolicy: props.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7)
    })
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*']
    }))
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: `cloud-monitoring-api ${props.stage} alarms`,
      masterKey: key,
      enforceSSL: true
    })
    if (props.alarmEmail) this.topic.addSubscription(new EmailSubscription(props.alarmEmail))
    this.action = new SnsAction(this.topic)
  }

  /** An alarm at `threshold` or above, notifying the topic when it fires and when it clears. */
  add (id: string, metric: cloudwatch.IMetric, opts: { threshold: number, description: string, periods?: number }): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      metric,
      threshold: opts.threshold,
      evaluationPeriods: opts.periods ?? 1,
      datapointsToAlarm: opts.periods ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: opts.description
    })
    alarm.addAlarmAction(this.action)
    alarm.addOkAction(this.action)
    this.alarms.push(alarm)
    return alarm
  }

  /**
   * One alarm per table on the throttled requests of the operations the service uses. Each
   * operation's metric is filled with 0: DynamoDB publishes ThrottledRequests only when a request
   * is throttled, and a sum of series without a common timestamp would have no value at all
   * (CDK's metricThrottledRequestsForOperations adds them unfilled).
   */
  addTableThrottles (tables: ServiceTable[]): void {
    for (const { spec, table } of tables) {
      const operations = THROTTLE_OPERATIONS.filter(op => op !== 'Scan' || (SCANNED_TABLES as readonly string[]).includes(spec.model))
      const usingMetrics = Object.fromEntries(operations.map(op => [op.toLowerCase(), table.metricThrottledRequestsForOperation(op, { period: PERIOD, statistic: 'Sum' })]))
      const throttled = new cloudwatch.MathExpression({
        expression: Object.keys(usingMetrics).map(id => `FILL(${id}, 0)`).join(' + '),
        usingMetrics,
        period: PERIOD,
        label: `Throttled requests (${spec.suffix})`
      })
      this.add(`${spec.logicalId}Throttles`, throttled, {
        threshold: THRESHOLDS.tableThrottles,
        description: `DynamoDB throttled requests on the ${spec.suffix} table (${operations.join(', ')}) per 5 minutes ≥ ${THRESHOLDS.tableThrottles}`
      })
    }
  }
}

export const ALARM_PERIOD = PERIOD
