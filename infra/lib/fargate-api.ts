import { Duration, RemovalPolicy } from 'aws-cdk-lib'
import * as acm from 'aws-cdk-lib/aws-certificatemanager'
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch'
import * as ec2 from 'aws-cdk-lib/aws-ec2'
import { Platform } from 'aws-cdk-lib/aws-ecr-assets'
import * as ecs from 'aws-cdk-lib/aws-ecs'
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2'
import * as iam from 'aws-cdk-lib/aws-iam'
import * as logs from 'aws-cdk-lib/aws-logs'
import * as s3 from 'aws-cdk-lib/aws-s3'
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager'
import { Construct } from 'constructs'
import { ALARM_PERIOD, THRESHOLDS, type ServiceAlarms } from './alarms.js'
import { ROOT } from './bundling.js'
import type { InfraConfig } from './config.js'
import { acknowledge } from './nag.js'

export interface FargateApiProps {
  config: InfraConfig
  statements: iam.PolicyStatement[]
  jwtSecret: ISecret
  alarms: ServiceAlarms
  logRetention: logs.RetentionDays
  /** Default: the repository's Dockerfile, built by `cdk deploy` (Docker needed then, not at synth). */
  image?: ecs.ContainerImage
}

const PORT = 3000

/**
 * The API as a container (the repository's Dockerfile) on ECS Fargate behind an internet-facing
 * ALB: two AZs, tasks in private subnets (NAT for STS and Secrets Manager, a gateway endpoint for
 * DynamoDB), JWT_SECRET injected from Secrets Manager, health check on /api/health, HTTPS when
 * a certificate is given.
 */
export class FargateApi extends Construct {
  readonly service: ecs.FargateService
  readonly loadBalancer: elbv2.ApplicationLoadBalancer
  /** Base URL of the API, without a trailing slash. */
  readonly url: string

  constructor (scope: Construct, id: string, props: FargateApiProps) {
    super(scope, id)
    const { config } = props
    const removalPolicy = config.prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', { retention: props.logRetention, removalPolicy })
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: config.prod ? 2 : 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 }
      ],
      flowLogs: { all: { destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs), trafficType: ec2.FlowLogTrafficType.REJECT } }
    })
    vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB })

    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED })
    const taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: `cloud-monitoring-api ${config.stage}: the API task`
    })
    for (const statement of props.statements) taskRole.addToPolicy(statement)

    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 512,
      memoryLimitMiB: 1024,
      taskRole,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX }
    })
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention, removalPolicy })
    task.addContainer('api', {
      image: props.image ?? ecs.ContainerImage.fromAsset(ROOT, { platform: Platform.LINUX_AMD64 }),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'api', logGroup }),
      environment: {
        DYNAMODB_ENDPOINT: 'aws',
        TABLE_PREFIX: config.tablePrefix,
        LOG_LEVEL: 'info',
        // Exactly one proxy hop: the ALB (docs/deployment.md, "ECS / Fargate").
        TRUST_PROXY: '1'
      },
      // Injected at start by the execution role; never in the task definition.
      secrets: { JWT_SECRET: ecs.Secret.fromSecretsManager(props.jwtSecret) },
      portMappings: [{ containerPort: PORT }],
      healthCheck: {
        command: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${PORT}/api/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`],
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30)
      },
      // With DYNAMODB_ENDPOINT=aws and JWT_SECRET set the process writes nothing to disk.
      readonlyRootFilesystem: true,
      // Above the server's own 10 s forced exit.
      stopTimeout: Duration.seconds(20),
      linuxParameters: new ecs.LinuxParameters(this, 'Linux', { initProcessEnabled: true })
    })
    acknowledge(task.obtainExecutionRole(), 'AwsSolutions-IAM5[Resource::*]', 'The execution role\'s only wildcard is ecr:GetAuthorizationToken, which has no resource-level permission; image pull, logs and the secret are granted on their own ARNs')
    acknowledge(task, 'AwsSolutions-ECS2', 'The environment holds configuration only (endpoint mode, table prefix, log level, proxy hops, and for onboarding the service\'s AWS account id, public URL and member role name); the JWT secret is injected from Secrets Manager through `secrets`')

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition: task,
      desiredCount: config.prod ? 2 : 1,
      minHealthyPercent: 100,
      circuitBreaker: { rollback: true },
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false
    })

    const accessLogs = new s3.Bucket(this, 'AlbLogs', {
      // ALB access logs support SSE-S3 only.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ expiration: Duration.days(90) }],
      removalPolicy,
      autoDeleteObjects: !config.prod
    })
    acknowledge(accessLogs, 'AwsSolutions-S1', 'This bucket only receives the ALB\'s access logs; logging its own access would need another bucket for little value')
    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'Alb', { vpc, internetFacing: true, dropInvalidHeaderFields: true })
    this.loadBalancer.logAccessLogs(accessLogs)
    const albSecurityGroup = this.loadBalancer.connections.securityGroups[0]!
    acknowledge(albSecurityGroup, 'AwsSolutions-EC23', 'An internet-facing API: the ALB accepts HTTP(S) from anywhere; the tasks accept traffic from the ALB only')

    const target = {
      port: PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service],
      healthCheck: { path: '/api/health', healthyHttpCodes: '200', interval: Duration.seconds(15) },
      // Longer than the slowest request, so the ALB stops sending before a task closes.
      deregistrationDelay: Duration.seconds(35)
    }
    let targetGroup: elbv2.ApplicationTargetGroup
    if (config.certificateArn) {
      const https = this.loadBalancer.addListener('Https', {
        port: 443,
        certificates: [acm.Certificate.fromCertificateArn(this, 'Certificate', config.certificateArn)],
        sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS
      })
      targetGroup = https.addTargets('Api', target)
      this.loadBalancer.addRedirect({ sourcePort: 80, targetPort: 443 })
      this.url = `https://${this.loadBalancer.loadBalancerDnsName}`
    } else {
      // Development only: without a certificate (-c certificateArn=…) the API is plain HTTP,
      // and EventBridge API destinations, which require HTTPS, cannot deliver to it.
      targetGroup = this.loadBalancer.addListener('Http', { port: 80 }).addTargets('Api', target)
      this.url = `http://${this.loadBalancer.loadBalancerDnsName}`
    }

    const serverErrors = new cloudwatch.MathExpression({
      expression: 'FILL(elb, 0) + FILL(targets, 0)',
      usingMetrics: {
        elb: this.loadBalancer.metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { statistic: 'Sum' }),
        targets: this.loadBalancer.metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { statistic: 'Sum' })
      },
      period: ALARM_PERIOD,
      label: '5xx answers (ALB and targets)'
    })
    props.alarms.add('ApiServerErrors', serverErrors, {
      threshold: THRESHOLDS.serverErrors,
      description: `API 5xx answers (ALB and targets) per 5 minutes ≥ ${THRESHOLDS.serverErrors}`
    })
    props.alarms.add('ApiLatencyP99', this.loadBalancer.metrics.targetResponseTime({ period: ALARM_PERIOD, statistic: 'p99' }), {
      // TargetResponseTime is in seconds.
      threshold: THRESHOLDS.latencyP99Ms / 1000,
      periods: 3,
      description: `API p99 latency (target response time) ≥ ${THRESHOLDS.latencyP99Ms} ms for 15 minutes`
    })
    props.alarms.add('UnhealthyTasks', targetGroup.metrics.unhealthyHostCount({ period: ALARM_PERIOD, statistic: 'Maximum' }), {
      threshold: 1,
      description: 'A task fails the ALB health check (/api/health: 503 when DynamoDB does not answer)'
    })
  }
}
