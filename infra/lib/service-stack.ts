import { Aws, CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib'
import type * as ecs from 'aws-cdk-lib/aws-ecs'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as logs from 'aws-cdk-lib/aws-logs'
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager'
import type { Construct } from 'constructs'
import { serviceStatements, type TableSpec } from '../../scripts/lib/table-definitions.js'
import { ServiceAlarms } from './alarms.js'
import type { InfraConfig } from './config.js'
import { ExpiryConsumer } from './expiry-consumer.js'
import { FargateApi } from './fargate-api.js'
import { LambdaApi } from './lambda-api.js'
import { NotificationWorker } from './notification-worker.js'
import { acknowledge } from './nag.js'
import { addOnboardingEnvironment } from './onboarding-env.js'
import { defineTables, type ServiceTable } from './tables.js'

export interface ServiceStackProps extends StackProps {
  config: InfraConfig
  /** The tables, from the models (scripts/lib/table-definitions.ts `describeTables`). */
  tables: TableSpec[]
  /** Fargate only: the image (default: built from the Dockerfile at deploy time). */
  image?: ecs.ContainerImage
}

/**
 * The service's IAM statements (scripts/lib/table-definitions.ts) on these tables: every GSI
 * named (no `/index/*`), plus `sts:AssumeRole` on the member accounts' read-only role for the
 * connection test.
 */
export function serviceIamStatements (tables: ServiceTable[], memberRoleName: string): iam.PolicyStatement[] {
  const byModel = new Map(tables.map(t => [t.spec.model, t.table]))
  const arn = (t: TableSpec): string => byModel.get(t.model)!.tableArn
  const statements = serviceStatements(tables.map(t => t.spec), arn, t => (t.request.GlobalSecondaryIndexes ?? []).map(g => `${arn(t)}/index/${g.IndexName}`))
    .map(s => new iam.PolicyStatement({ sid: s.sid, actions: s.actions, resources: s.resources }))
  statements.push(new iam.PolicyStatement({
    sid: 'ConnectionTest',
    actions: ['sts:AssumeRole'],
    resources: [`arn:${Aws.PARTITION}:iam::*:role/${memberRoleName}`]
  }))
  return statements
}

/** The reason for the one wildcard of the service's role. */
export const ASSUME_ROLE_REASON = 'The connection test assumes the read-only role of accounts that admins register at run time: any account, but only the role name the member stack creates, whose trust policy also demands the external id'

/**
 * One stage of the service: the tables (from the models), the JWT secret, the API (Lambda +
 * HTTP API by default, or Fargate + ALB with `-c compute=fargate`) and the alarms.
 */
export class ServiceStack extends Stack {
  readonly tables: ServiceTable[]
  readonly jwtSecret: secretsmanager.Secret
  readonly alarms: ServiceAlarms
  readonly api: LambdaApi | FargateApi
  /** Takes events removed by TTL off the dashboard counters (the events table's stream). */
  readonly expiry: ExpiryConsumer
  /** Lambda deployment only: delivers notifications on a schedule (Fargate tasks do it in process). */
  readonly notifications: NotificationWorker | undefined

  constructor (scope: Construct, id: string, props: ServiceStackProps) {
    super(scope, id, {
      description: `cloud-monitoring-api ${props.config.stage}: tables, API (${props.config.compute}), alarms`,
      ...props
    })
    const { config } = props
    this.tables = defineTables(this, props.tables, { prefix: config.tablePrefix, prod: config.prod })

    this.jwtSecret = new secretsmanager.Secret(this, 'JwtSecret', {
      description: `cloud-monitoring-api ${config.stage}: the JWT signing secret (changing it logs everybody out)`,
      generateSecretString: { passwordLength: 64, excludePunctuation: true, includeSpace: false },
      removalPolicy: config.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY
    })
    acknowledge(this.jwtSecret, 'AwsSolutions-SMG4', 'The JWT signing secret has no rotation function: a new value signs out every user and running instances keep the value they started with, so rotation is a planned operation (docs/deployment.md, "Deploy with the CDK")')

    this.alarms = new ServiceAlarms(this, 'Alarms', { alarmEmail: config.alarmEmail, prod: config.prod, stage: config.stage })
    this.alarms.addTableThrottles(this.tables)

    const statements = serviceIamStatements(this.tables, config.memberRoleName)
    const logRetention = config.prod ? logs.RetentionDays.ONE_YEAR : logs.RetentionDays.TWO_WEEKS
    const common = { config, statements, jwtSecret: this.jwtSecret, alarms: this.alarms, logRetention }
    this.api = config.compute === 'fargate'
      ? new FargateApi(this, 'Fargate', { ...common, ...(props.image ? { image: props.image } : {}) })
      : new LambdaApi(this, 'Lambda', common)
    // SERVICE_AWS_ACCOUNT_ID, PUBLIC_BASE_URL, MEMBER_ROLE_NAME: the onboarding kit's values.
    addOnboardingEnvironment(this.api, config)
    const role = this.api instanceof LambdaApi ? this.api.fn.role! : this.api.service.taskDefinition.taskRole
    acknowledge(role, `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::*:role/${config.memberRoleName}]`, ASSUME_ROLE_REASON)

    const table = (model: TableSpec['model']): ServiceTable => this.tables.find(t => t.spec.model === model)!
    this.expiry = new ExpiryConsumer(this, 'Expiry', { config, events: table('events'), stats: table('stats'), meta: table('meta'), alarms: this.alarms, logRetention })
    this.notifications = this.api instanceof LambdaApi
      ? new NotificationWorker(this, 'Notifications', { ...common, publicBaseUrl: config.publicBaseUrl ?? this.api.url })
      : undefined

    new CfnOutput(this, 'ApiUrl', { value: this.api.url, description: 'Base URL of the API, without a trailing slash (ServiceUrl parameter of the member-account stack)' })
    new CfnOutput(this, 'TablePrefix', { value: config.tablePrefix, description: 'TABLE_PREFIX of this stage (operator scripts: DYNAMODB_ENDPOINT=aws TABLE_PREFIX=… npm run seed:admin)' })
    new CfnOutput(this, 'JwtSecretArn', { value: this.jwtSecret.secretArn })
    new CfnOutput(this, 'AlarmTopicArn', { value: this.alarms.topic.topicArn, description: 'Subscribe to receive the alarms' })
    new CfnOutput(this, 'ServiceAccountId', { value: Aws.ACCOUNT_ID, description: 'ServiceAccountId parameter of the member-account stack' })
    new CfnOutput(this, 'MemberRoleName', { value: config.memberRoleName, description: 'RoleName parameter of the member-account stack' })
  }
}
