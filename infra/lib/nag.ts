import { Validations } from 'aws-cdk-lib'
import type { IConstruct } from 'constructs'

/**
 * Acknowledges one cdk-nag finding on a construct, with the reason it is accepted. cdk-nag 3
 * uses CDK's own acknowledgements (`Validations.of(…).acknowledge`); NagSuppressions is gone.
 * A finding with a detail (IAM5) is acknowledged with it: `AwsSolutions-IAM5[Resource::…]`.
 */
export function acknowledge (construct: IConstruct, id: string, reason: string): void {
  if (reason.trim().length < 20) throw new Error(`acknowledging ${id}: give a real reason`)
  Validations.of(construct).acknowledge({ id, reason })
}
