import path from 'node:path'
import { Aws, Duration, RemovalPolicy } from 'aws-cdk-lib'
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2'
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as lambda from 'aws-cdk-lib/aws-lambda'
import { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs'
import * as logs from 'aws-cdk-lib/aws-logs'
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager'
import { Construct } from 'constructs'
import { ALARM_PERIOD, THRESHOLDS, type ServiceAlarms } from './alarms.js'
import { API_RUNTIME, apiBundling, ROOT } from './bundling.js'
import type { InfraConfig } from './config.js'
import { acknowledge } from './nag.js'
import { functionRole } from './function-role.js'

export interface LambdaApiProps {
  config: InfraConfig
  /** The service's statements (tables, connection test). */
  statements: iam.PolicyStatement[]
  jwtSecret: ISecret
  alarms: ServiceAlarms
  logRetention: logs.RetentionDays
}

/**
 * The API as one Lambda function (src/lambda.ts, bundled with esbuild on this machine) behind
 * an API Gateway HTTP API: payload format 2.0, a `$default` route to the function, the stage
 * throttled and access-logged. The function's role has exactly the service's statements, read
 * access to the JWT secret and writing to its own log group.
 */
export class LambdaApi extends Construct {
  readonly fn: NodejsFunction
  readonly api: apigwv2.HttpApi
  readonly stage: apigwv2.HttpStage
  /** Base URL of the API, without a trailing slash. */
  readonly url: string

  constructor (scope: Construct, id: string, props: LambdaApiProps) {
    super(scope, id)
    const { config } = props
    const removalPolicy = config.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy })

    const role = functionRole(this, `cloud-monitoring-api ${config.stage}: the API function`, props.statements, logGroup)
    props.jwtSecret.grantRead(role)

    this.fn = new NodejsFunction(this, 'Function', {
      description: `cloud-monitoring-api ${config.stage}: the Fastify app (src/lambda.ts)`,
      entry: path.join(ROOT, 'src', 'lambda.ts'),
      handler: 'handler',
      projectRoot: ROOT,
      depsLockFilePath: path.join(ROOT, 'package-lock.json'),
      runtime: API_RUNTIME,
      // Graviton: cheaper per GB-second; argon2's prebuilt binaries include linux arm64.
      architecture: lambda.Architecture.ARM_64,
      // argon2 (19 MiB per hash) wants memory, and memory buys CPU for the cold start.
      memorySize: 1024,
      // Below the HTTP API's 30 s integration limit, so the API never answers for a live call.
      timeout: Duration.seconds(29),
      role,
      logGroup,
      ...(config.reservedConcurrency ? { reservedConcurrentExecutions: config.reservedConcurrency } : {}),
      environment: {
        NODE_ENV: 'production',
        NODE_OPTIONS: '--enable-source-maps',
        DYNAMODB_ENDPOINT: 'aws',
        TABLE_PREFIX: config.tablePrefix,
        JWT_SECRET_ARN: props.jwtSecret.secretArn,
        LOG_LEVEL: 'info'
      },
      bundling: apiBundling()
    })
    acknowledge(this.fn, 'AwsSolutions-L1', `${API_RUNTIME.name} (Node 24 LTS) is the runtime this project verifies the service on (CI runs it on a Node 24 binary); a newer runtime is adopted when that check moves`)

    const accessLogs = new logs.LogGroup(this, 'AccessLogs', { retention: props.logRetention, removalPolicy })
    this.api = new apigwv2.HttpApi(this, 'HttpApi', {
      apiName: `cloud-monitoring-api-${config.stage}`,
      description: `cloud-monitoring-api ${config.stage}`,
      createDefaultStage: false,
      defaultIntegration: new HttpLambdaIntegration('Function', this.fn, { payloadFormatVersion: apigwv2.PayloadFormatVersion.VERSION_2_0 })
    })
    this.stage = new apigwv2.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      // A ceiling for floods (cost); per-client, per-login and per-key limits are the app's.
      throttle: { rateLimit: 1000, burstLimit: 2000 },
      accessLogSettings: { destination: new apigwv2.LogGroupLogDestination(accessLogs) }
    })
    // Without the trailing slash: the member stack's ServiceUrl appends /api/events/ingest.
    this.url = `https://${this.api.apiId}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}`
    for (const route of this.api.node.findAll().filter(c => c instanceof apigwv2.CfnRoute)) {
      acknowledge(route, 'AwsSolutions-APIG4', 'Authentication is the app\'s: a JWT on every route that is not public (plugins/rbac.ts refuses to start with a route without a policy), the ingestion API key on /api/events/ingest; the public routes (health, login, docs) must stay reachable')
    }

    props.alarms.add('ApiServerErrors', this.api.metricServerError({ period: ALARM_PERIOD, statistic: 'Sum' }), {
      threshold: THRESHOLDS.serverErrors,
      description: `API 5xx answers (API Gateway) per 5 minutes ≥ ${THRESHOLDS.serverErrors}`
    })
    props.alarms.add('ApiLatencyP99', this.api.metricLatency({ period: ALARM_PERIOD, statistic: 'p99' }), {
      threshold: THRESHOLDS.latencyP99Ms,
      periods: 3,
      description: `API p99 latency ≥ ${THRESHOLDS.latencyP99Ms} ms for 15 minutes`
    })
    props.alarms.add('FunctionErrors', this.fn.metricErrors({ period: ALARM_PERIOD, statistic: 'Sum' }), {
      threshold: THRESHOLDS.functionErrors,
      description: 'Failed invocations of the API function (start failed, time-out, crash)'
    })
    props.alarms.add('FunctionThrottles', this.fn.metricThrottles({ period: ALARM_PERIOD, statistic: 'Sum' }), {
      threshold: THRESHOLDS.functionThrottles,
      description: 'Throttled invocations of the API function (concurrency limit reached)'
    })
  }
}
