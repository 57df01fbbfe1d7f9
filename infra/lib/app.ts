import { Tags, Validations, type App } from 'aws-cdk-lib'
import type * as ecs from 'aws-cdk-lib/aws-ecs'
import { AwsSolutionsChecks } from 'cdk-nag'
import { describeTables } from '../../scripts/lib/table-definitions.js'
import { readConfig, type InfraConfig } from './config.js'
import { defineMemberStack, type MemberAccountStack } from './member-stack.js'
import { ServiceStack } from './service-stack.js'

export interface InfraStacks {
  config: InfraConfig
  service: ServiceStack
  member: MemberAccountStack
}

/**
 * Adds the stacks to `app` from its context (infra/lib/config.ts) and runs cdk-nag's AWS
 * Solutions checks at synthesis: an unacknowledged finding fails `synth`. Used by
 * infra/bin/app.ts and by the tests. No stack names an account: synthesis needs no AWS
 * credentials, and `cdk deploy` takes the account from the CLI's profile. The member stack is
 * region-agnostic too (one template for every account and region).
 */
export async function defineInfra (app: App, opts: { image?: ecs.ContainerImage } = {}): Promise<InfraStacks> {
  const config = readConfig(app.node)
  const tables = await describeTables()
  const service = new ServiceStack(app, `CloudMonitoring-${config.stage}`, {
    config,
    ...(config.region ? { env: { region: config.region } } : {}),
    tables,
    ...(opts.image ? { image: opts.image } : {})
  })
  const member = defineMemberStack(app, config.memberRoleName)
  Tags.of(service).add('service', 'cloud-monitoring-api')
  Tags.of(service).add('stage', config.stage)
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app))
  return { config, service, member }
}
