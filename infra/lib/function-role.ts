import * as iam from 'aws-cdk-lib/aws-iam'
import type * as logs from 'aws-cdk-lib/aws-logs'
import type { Construct } from 'constructs'

/**
 * The role of one of the service's Lambda functions: assumed by Lambda only, no managed policy
 * (not even AWSLambdaBasicExecutionRole), exactly `statements`, then writing to its own log
 * group (`OwnLogGroup`): nothing else.
 */
export function functionRole (scope: Construct, description: string, statements: iam.PolicyStatement[], logGroup: logs.ILogGroup): iam.Role {
  const role = new iam.Role(scope, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description })
  for (const statement of statements) role.addToPolicy(statement)
  role.addToPolicy(new iam.PolicyStatement({
    sid: 'OwnLogGroup',
    actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
    resources: [logGroup.logGroupArn]
  }))
  return role
}
