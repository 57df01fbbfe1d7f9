import path from 'node:path'
import { Duration, RemovalPolicy } from 'aws-cdk-lib'
import * as events from 'aws-cdk-lib/aws-events'
import * as targets from 'aws-cdk-lib/aws-events-targets'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as lambda from 'aws-cdk-lib/aws-lambda'
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs'
import * as logs from 'aws-cdk-lib/aws-logs'
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager'
import { Construct } from 'constructs'
import { ALARM_PERIOD, THRESHOLDS, type ServiceAlarms } from './alarms.js'
import { API_RUNTIME, ROOT, apiBundling } from './bundling.js'
import type { InfraConfig } from './config.js'
import { acknowledge } from './nag.js'
import { functionRole } from './function-role.js'

export interface NotificationWorkerProps {
  config: InfraConfig
  /** The service's statements (the worker reads and writes the same tables as the API). */
  statements: iam.PolicyStatement[]
  jwtSecret: ISecret
  /** PUBLIC_BASE_URL: the console's address in notifications. */
  publicBaseUrl: string
  alarms: ServiceAlarms
  logRetention: logs.RetentionDays
}

/** The schedule: once a minute; each invocation delivers for about 50 s (src/lambda-notifications.ts). */
export const NOTIFICATION_SCHEDULE = Duration.minutes(1)

/**
 * The notification worker of the Lambda deployment: the API function runs no timers, so an
 * EventBridge schedule invokes this function once a minute and it runs the worker every 2 s for
 * about 50 s (src/lambda-notifications.ts): notifications leave within seconds of the change.
 * Chosen over a DynamoDB stream: the marks live in two tables (events, tasks), retries and the
 * group window are time-driven (a stream only wakes on writes), and one function on a schedule
 * covers both. At most one invocation at a time (reserved concurrency 1; overlapping ones would
 * be safe anyway: leases per channel). Outbound HTTPS goes straight to the internet (no VPC):
 * the worker's own checks refuse private and metadata addresses (docs/notifications.md).
 * The Fargate deployment needs none of this: its tasks run the worker in process.
 */
export class NotificationWorker extends Construct {
  readonly fn: NodejsFunction
  readonly rule: events.Rule

  constructor (scope: Construct, id: string, props: NotificationWorkerProps) {
    super(scope, id)
    const { config } = props
    const removalPolicy = config.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy })
    // The tables, as the API; not the connection test's sts:AssumeRole (the worker assumes nothing).
    const role = functionRole(this, `cloud-monitoring-api ${config.stage}: the notification worker`, props.statements.filter(st => st.sid !== 'ConnectionTest'), logGroup)
    props.jwtSecret.grantRead(role)

    this.fn = new NodejsFunction(this, 'Function', {
      description: `cloud-monitoring-api ${config.stage}: delivers notifications (src/lambda-notifications.ts)`,
      entry: path.join(ROOT, 'src', 'lambda-notifications.ts'),
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: path.join(ROOT, 'package-lock.json'),
      runtime: API_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: 512,
      // The 50 s of deliveries, and the last sends' time-outs.
      timeout: Duration.seconds(75),
      reservedConcurrentExecutions: 1,
      role,
      logGroup,
      environment: {
        NODE_ENV: 'production',
        NODE_OPTIONS: '--enable-source-maps',
        DYNAMODB_ENDPOINT: 'aws',
        TABLE_PREFIX: config.tablePrefix,
        JWT_SECRET_ARN: props.jwtSecret.secretArn,
        PUBLIC_BASE_URL: props.publicBaseUrl,
        NOTIFICATION_POLL_MS: '2000',
        LOG_LEVEL: 'info',
        /** Marks the function as a worker (not the API) for readers of the template. */
        WORKER: 'notifications'
      },
      bundling: apiBundling()
    })
    acknowledge(this.fn, 'AwsSolutions-L1', `${API_RUNTIME.name} (Node 24 LTS) is the runtime this project verifies the service on (CI runs it on a Node 24 binary); a newer runtime is adopted when that check moves`)

    this.rule = new events.Rule(this, 'Schedule', {
      description: `cloud-monitoring-api ${config.stage}: runs the notification worker`,
      schedule: events.Schedule.rate(NOTIFICATION_SCHEDULE),
      targets: [new targets.LambdaFunction(this.fn, { retryAttempts: 0 })]
    })

    props.alarms.add('NotificationWorkerErrors', this.fn.metricErrors({ period: ALARM_PERIOD, statistic: 'Sum' }), {
      threshold: THRESHOLDS.functionErrors,
      description: 'Failed invocations of the notification worker (start failed, time-out, crash): notifications wait until it runs again'
    })
  }
}
