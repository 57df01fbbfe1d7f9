import { Aws } from 'aws-cdk-lib'
import type { InfraConfig } from './config.js'
import { FargateApi } from './fargate-api.js'
import type { LambdaApi } from './lambda-api.js'

/**
 * What the service needs to fill in the member stack for an account's owner
 * (`GET /api/config/aws-accounts/{id}/onboarding`, src/domain/onboarding.ts): the AWS account it
 * runs in (the principal the member role trusts), its public URL (the member stacks' ServiceUrl:
 * `-c publicBaseUrl`, else the API's own URL, which for Fargate without a certificate is http and
 * so reported as missing), the role name its policy may assume, and where the generic member
 * template is published (`-c memberTemplateUrl`, for quick-create links).
 */
export function onboardingEnvironment (config: InfraConfig, apiUrl: string): Record<string, string> {
  return {
    SERVICE_AWS_ACCOUNT_ID: Aws.ACCOUNT_ID,
    PUBLIC_BASE_URL: config.publicBaseUrl ?? apiUrl,
    MEMBER_ROLE_NAME: config.memberRoleName,
    ...(config.memberTemplateUrl ? { MEMBER_TEMPLATE_URL: config.memberTemplateUrl } : {})
  }
}

/** Adds onboardingEnvironment to the API's function or container (after the API exists: its URL). */
export function addOnboardingEnvironment (api: LambdaApi | FargateApi, config: InfraConfig): void {
  for (const [name, value] of Object.entries(onboardingEnvironment(config, api.url))) {
    if (api instanceof FargateApi) api.service.taskDefinition.defaultContainer!.addEnvironment(name, value)
    else api.fn.addEnvironment(name, value)
  }
}
