import { BootstraplessSynthesizer, CfnCondition, CfnOutput, CfnParameter, Duration, Fn, SecretValue, Stack, Tags, type CfnResource, type StackProps } from 'aws-cdk-lib'
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch'
import * as events from 'aws-cdk-lib/aws-events'
import * as targets from 'aws-cdk-lib/aws-events-targets'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as sqs from 'aws-cdk-lib/aws-sqs'
import type { Construct } from 'constructs'
// The sources and detail-types the service has adapters for: the rule matches exactly these.
import { DETAIL_TYPES } from '../../src/domain/event-adapters.js'
// The names the connection test looks the wiring up by.
import { INGEST_PATH, MEMBER_WIRING, SERVICE_URL_PATTERN } from '../../src/domain/member-wiring.js'
// The parameter names onboarding fills in (the service builds its kits from them).
import { MEMBER_PARAMETERS as P } from '../../src/domain/onboarding.js'
import { acknowledge } from './nag.js'

/** The rule's event pattern: the four supported sources and their supported detail-types. */
export const MEMBER_EVENT_PATTERN = {
  source: Object.keys(DETAIL_TYPES),
  detailType: Object.values(DETAIL_TYPES).flat()
}

/** Read-only calls the service may make with the role: alarms, findings, health events, and its own rule (the connection test reads the rule, its targets and the API destination). */
export const MEMBER_READ_ACTIONS = [
  'cloudwatch:DescribeAlarms',
  'cloudwatch:DescribeAlarmHistory',
  'cloudwatch:GetMetricData',
  'cloudwatch:ListMetrics',
  'guardduty:ListDetectors',
  'guardduty:GetDetector',
  'guardduty:ListFindings',
  'guardduty:GetFindings',
  'securityhub:DescribeHub',
  'securityhub:GetFindings',
  'health:DescribeEvents',
  'health:DescribeEventDetails',
  'health:DescribeAffectedEntities',
  'events:DescribeRule',
  'events:ListTargetsByRule',
  'events:DescribeApiDestination',
  'events:DescribeConnection'
]

/** EventBridge's bounds and defaults for a target (docs/ingestion.md). */
export const RETRY = { maxEventAge: Duration.hours(24), retryAttempts: 185 }
export const DLQ_RETENTION = Duration.days(14)

export interface MemberAccountStackProps extends StackProps {
  /** Default of the RoleName parameter: the name the service's role may assume (`sts:AssumeRole`). */
  roleName: string
}

/**
 * Deployed in every monitored account, in every region it lists (a StackSet, or one stack per
 * region). Plain CloudFormation with parameters, no assets and no CDK bootstrap, so the
 * synthesised template can be handed to an account owner or a StackSet as it is.
 *
 * - The read-only role the connection test assumes (`sts:AssumeRole` with the external id,
 *   src/modules/settings/connection-test.ts), created where CreateRole=true: IAM is global,
 *   so exactly one region of each account creates it.
 * - Regional: an EventBridge connection (API key in header X-Api-Key; the key is a NoEcho
 *   parameter and lives in the connection's Secrets Manager secret), an API destination to
 *   <ServiceUrl>/api/events/ingest, a rule on the default bus for the supported events, with a
 *   retry policy (24 h, 185 attempts) and an encrypted SQS dead-letter queue (14 days). The
 *   rule, destination and connection have fixed names (MEMBER_WIRING,
 *   src/domain/member-wiring.ts): the connection test checks them by name in every region.
 */
export class MemberAccountStack extends Stack {
  constructor (scope: Construct, id: string, props: MemberAccountStackProps) {
    super(scope, id, {
      description: 'cloud-monitoring: a monitored account (read-only role for the service, EventBridge delivery of alarms and findings to the service)',
      synthesizer: new BootstraplessSynthesizer(),
      analyticsReporting: false,
      ...props
    })

    const serviceAccountId = new CfnParameter(this, P.serviceAccountId, {
      type: 'String',
      allowedPattern: '^[0-9]{12}$',
      description: 'The AWS account the cloud-monitoring service runs in (trusted to assume the role)'
    })
    const externalId = new CfnParameter(this, P.externalId, {
      type: 'String',
      minLength: 2,
      maxLength: 1224,
      allowedPattern: '^[\\w+=,.@:/-]+$',
      description: 'The external id registered with the account in the console (external_id); required by the trust policy'
    })
    const roleName = new CfnParameter(this, P.roleName, {
      type: 'String',
      default: props.roleName,
      allowedPattern: '^[\\w+=,.@-]{1,64}$',
      description: 'Name of the read-only role; register arn:aws:iam::<this account>:role/<RoleName> as role_arn'
    })
    const createRole = new CfnParameter(this, P.createRole, {
      type: 'String',
      default: 'true',
      allowedValues: ['true', 'false'],
      description: 'true in exactly one region of the account (IAM is global); false in the others'
    })
    const serviceUrl = new CfnParameter(this, P.serviceUrl, {
      type: 'String',
      allowedPattern: SERVICE_URL_PATTERN,
      description: 'Base URL of the service, https, without a trailing slash (events go to <ServiceUrl>/api/events/ingest)'
    })
    const apiKey = new CfnParameter(this, P.apiKey, {
      type: 'String',
      noEcho: true,
      minLength: 16,
      maxLength: 128,
      description: 'The account\'s ingestion API key (returned once by the console when the account is registered or its key rotated)'
    })
    const rate = new CfnParameter(this, 'InvocationRateLimitPerSecond', {
      type: 'Number',
      default: 300,
      minValue: 1,
      description: 'Deliveries per second from this region to the service (EventBridge delays, never drops, what is above); set it with INGEST_RATE_LIMIT_MAX'
    })
    this.templateOptions.metadata = {
      'AWS::CloudFormation::Interface': {
        ParameterGroups: [
          { Label: { default: 'The service' }, Parameters: [P.serviceUrl, P.apiKey, 'InvocationRateLimitPerSecond'] },
          { Label: { default: 'The read-only role' }, Parameters: [P.serviceAccountId, P.externalId, P.roleName, P.createRole] }
        ]
      }
    }

    // ---- global part: the role, once per account ----
    const roleCondition = new CfnCondition(this, 'CreateRoleCondition', { expression: Fn.conditionEquals(createRole.valueAsString, 'true') })
    const role = new iam.Role(this, 'ReadOnlyRole', {
      roleName: roleName.valueAsString,
      description: 'cloud-monitoring: read-only access for the monitoring service (assumed with an external id)',
      assumedBy: new iam.PrincipalWithConditions(new iam.AccountPrincipal(serviceAccountId.valueAsString), {
        StringEquals: { 'sts:ExternalId': externalId.valueAsString }
      }),
      maxSessionDuration: Duration.hours(1)
    })
    const policy = new iam.ManagedPolicy(this, 'ReadOnlyPolicy', {
      description: 'cloud-monitoring: read alarms, findings and health events, and the delivery rule',
      statements: [new iam.PolicyStatement({ sid: 'MonitoringRead', actions: MEMBER_READ_ACTIONS, resources: ['*'] })],
      roles: [role]
    })
    for (const c of [role, policy]) (c.node.defaultChild as CfnResource).cfnOptions.condition = roleCondition
    acknowledge(policy, 'AwsSolutions-IAM5[Resource::*]', 'These List/Describe/Get calls of CloudWatch, GuardDuty, Security Hub, Health and EventBridge take no resource-level restriction (or their resources are unknown when the account is onboarded); the actions themselves are read-only and listed one by one')

    // ---- regional part: delivery of events to the service ----
    const connection = new events.Connection(this, 'Connection', {
      connectionName: MEMBER_WIRING.connectionName,
      description: 'cloud-monitoring: the account\'s ingestion API key (header X-Api-Key)',
      authorization: events.Authorization.apiKey('X-Api-Key', SecretValue.cfnParameter(apiKey))
    })
    const destination = new events.ApiDestination(this, 'Destination', {
      apiDestinationName: MEMBER_WIRING.apiDestinationName,
      description: `cloud-monitoring: POST <ServiceUrl>${INGEST_PATH}`,
      connection,
      endpoint: `${serviceUrl.valueAsString}${INGEST_PATH}`,
      httpMethod: events.HttpMethod.POST,
      rateLimitPerSecond: rate.valueAsNumber
    })
    const deadLetters = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      retentionPeriod: DLQ_RETENTION,
      enforceSSL: true
    })
    acknowledge(deadLetters, 'AwsSolutions-SQS3', 'This queue is the dead-letter queue of the EventBridge target (redrive after fixing the delivery; docs/ingestion.md)')
    const rule = new events.Rule(this, 'Rule', {
      ruleName: MEMBER_WIRING.ruleName,
      description: 'cloud-monitoring: CloudWatch alarm state changes, GuardDuty and Security Hub findings, AWS Health events',
      eventPattern: MEMBER_EVENT_PATTERN,
      targets: [new targets.ApiDestination(destination, { deadLetterQueue: deadLetters, ...RETRY })]
    })
    // Shows up in the console like any alarm of the account, when delivery works again.
    new cloudwatch.Alarm(this, 'DeadLettersAlarm', {
      metric: deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: 'Maximum' }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescription: '[severity:high] cloud-monitoring: events could not be delivered to the service and wait in the dead-letter queue (check the API key and the service; redrive them)'
    })

    new CfnOutput(this, 'RoleArn', { value: role.roleArn, condition: roleCondition, description: 'Register this as the account\'s role_arn' })
    new CfnOutput(this, 'RuleArn', { value: rule.ruleArn })
    new CfnOutput(this, 'ApiDestinationArn', { value: destination.apiDestinationArn })
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: deadLetters.queueUrl })
  }
}

/** The member stack's id (and name of its template in cdk.out/). */
export const MEMBER_STACK_ID = 'CloudMonitoringMember'

/**
 * The member-account stack as the CDK app defines it (infra/lib/app.ts), tags included: one
 * definition for `npm run synth`, the committed template the service hands out
 * (scripts/generate-member-template.ts) and the tests that compare the two.
 */
export function defineMemberStack (scope: Construct, roleName: string): MemberAccountStack {
  const member = new MemberAccountStack(scope, MEMBER_STACK_ID, { roleName })
  Tags.of(member).add('service', 'cloud-monitoring')
  return member
}
