/**
 * The onboarding kit of a monitored AWS account (`GET /api/config/aws-accounts/{id}/onboarding`):
 * the member-account template (synthesised at build time, passed in) with the account's values
 * as parameter defaults, a CloudFormation quick-create link per region, the AWS CLI commands and
 * the steps. Pure: no framework, no I/O. The API key is never part of it.
 */
import type { AwsAccountOnboarding, OnboardingMissing, OnboardingParameter, OnboardingRegion } from '../../openapi/generated/schemas.js'
import { INGEST_PATH } from './member-wiring.js'

/** A CloudFormation template as JSON (only what is read here is typed). */
export interface CfnTemplate {
  Parameters: Record<string, CfnParameter>
  Resources: Record<string, unknown>
  [key: string]: unknown
}
export interface CfnParameter {
  Type: string
  Default?: string | number
  Description?: string
  NoEcho?: boolean
  AllowedPattern?: string
  AllowedValues?: string[]
  MinLength?: number
  MaxLength?: number
  [key: string]: unknown
}

/** The member stack's parameters (infra/lib/member-stack.ts) that onboarding fills in or refers to. */
export const MEMBER_PARAMETERS = {
  serviceAccountId: 'ServiceAccountId',
  externalId: 'ExternalId',
  roleName: 'RoleName',
  createRole: 'CreateRole',
  serviceUrl: 'ServiceUrl',
  apiKey: 'ApiKey'
} as const

/** The stack name in every region (one member stack per account and region). */
export const MEMBER_STACK_NAME = 'cloud-monitoring-member'
/** The file name the commands expect the template under. */
export const MEMBER_TEMPLATE_FILE = 'cloud-monitoring-member.json'
/** What stands for the API key in commands: never the key itself. */
export const API_KEY_PLACEHOLDER = '<paste the API key>'
/** The name `missing` uses for the quick-create link's template (the link's own parameter name). */
export const TEMPLATE_URL_ITEM = 'templateURL'

export interface OnboardingAccount {
  account_id: string
  role_arn: string
  external_id: string | null
  regions: string[]
}

export interface OnboardingService {
  /** SERVICE_AWS_ACCOUNT_ID: the AWS account the service runs in (the principal the role trusts). */
  serviceAccountId: string | undefined
  /** PUBLIC_BASE_URL, without a trailing slash. */
  publicBaseUrl: string | undefined
  /** MEMBER_ROLE_NAME: the role name the service's IAM policy may assume. */
  memberRoleName: string
  /** MEMBER_TEMPLATE_URL: where the generic member template is published (https, S3). */
  templateUrl: string | undefined
  /** The service's region: used when the account lists no region (as the connection test does). */
  region: string
}

/** The partition of an ARN (`aws`, `aws-cn`, `aws-us-gov`, …); `aws` when it cannot be read. */
const partitionOf = (arn: string): string => /^arn:(aws[a-zA-Z-]*):/.exec(arn)?.[1] ?? 'aws'

/** The AWS console's host for a partition and region. */
function consoleHost (partition: string, region: string): string {
  if (partition === 'aws-cn') return `${region}.console.amazonaws.cn`
  if (partition === 'aws-us-gov') return 'console.amazonaws-us-gov.com'
  return `${region}.console.aws.amazon.com`
}

/**
 * A CloudFormation quick-create link ("Creating quick-create links for stacks" in the
 * CloudFormation user guide): the console's create-stack review page with the template URL, the
 * stack name and `param_<Name>` values, each URL-encoded, in the fragment the console reads.
 */
export function quickCreateUrl (opts: { partition: string, region: string, templateUrl: string, stackName: string, parameters: Array<[string, string]> }): string {
  const query = [
    ['templateURL', opts.templateUrl],
    ['stackName', opts.stackName],
    ...opts.parameters.map(([name, value]) => [`param_${name}`, value])
  ].map(([k, v]) => `${encodeURIComponent(k!)}=${encodeURIComponent(v!)}`).join('&')
  return `https://${consoleHost(opts.partition, opts.region)}/cloudformation/home?region=${encodeURIComponent(opts.region)}#/stacks/create/review?${query}`
}

/** A shell word: as it is when it holds only safe characters, else in single quotes. */
export const shellWord = (s: string): string => /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`

/** Whether a value passes a template parameter's own constraints (pattern, length, allowed values). */
function acceptedBy (p: CfnParameter, value: string): boolean {
  if (p.AllowedPattern !== undefined && !new RegExp(p.AllowedPattern).test(value)) return false
  if (p.MinLength !== undefined && value.length < p.MinLength) return false
  if (p.MaxLength !== undefined && value.length > p.MaxLength) return false
  if (p.AllowedValues !== undefined && !p.AllowedValues.includes(value)) return false
  return true
}

/**
 * Builds the kit. Values come from the account (external id, regions, partition) and the
 * service (its AWS account, public URL, role name, published template); a value the service
 * cannot give, or that the template's own constraints refuse, is left out (no default) and
 * listed in `missing`. Quick-create links only when nothing is missing.
 */
export function buildOnboarding (account: OnboardingAccount, service: OnboardingService, template: CfnTemplate): AwsAccountOnboarding {
  const P = MEMBER_PARAMETERS
  const partition = partitionOf(account.role_arn)
  const missing: OnboardingMissing[] = []
  const notes: string[] = []

  // What the service proposes for each parameter, and why not when it cannot.
  const proposed = new Map<string, { value: string } | { reason: string }>()
  proposed.set(P.serviceAccountId, service.serviceAccountId
    ? { value: service.serviceAccountId }
    : { reason: 'The service does not know the AWS account it runs in: set SERVICE_AWS_ACCOUNT_ID (12 digits; the CDK service stack sets it, see its ServiceAccountId output), or give that account yourself when deploying.' })
  proposed.set(P.externalId, account.external_id
    ? { value: account.external_id }
    : { reason: 'The account has no external_id, and the role\'s trust policy requires one: set external_id on the account (edit it), then open this again.' })
  proposed.set(P.roleName, { value: service.memberRoleName })
  const url = service.publicBaseUrl
  proposed.set(P.serviceUrl, !url
    ? { reason: `The service does not know its public URL: set PUBLIC_BASE_URL (https; events go to <PUBLIC_BASE_URL>${INGEST_PATH}), or give the service's https URL yourself when deploying.` }
    : !url.startsWith('https://')
        ? { reason: `PUBLIC_BASE_URL is ${url}, not https: EventBridge API destinations deliver to https endpoints only. Put the service behind https (a certificate on the load balancer, or a custom domain) and set PUBLIC_BASE_URL to it.` }
        : { value: url })

  const parameters: OnboardingParameter[] = []
  const filled = structuredClone(template)
  for (const [name, p] of Object.entries(template.Parameters)) {
    const secret = p.NoEcho === true
    const description = p.Description ?? ''
    if (secret) {
      parameters.push({ name, value: null, description, secret })
      continue
    }
    const proposal = proposed.get(name)
    if (proposal && 'reason' in proposal) {
      missing.push({ parameter: name, reason: proposal.reason })
      parameters.push({ name, value: null, description, secret })
      continue
    }
    if (proposal && !acceptedBy(p, proposal.value)) {
      missing.push({ parameter: name, reason: `The value ${proposal.value} does not meet the template's constraints for ${name}${p.AllowedPattern ? ` (${p.AllowedPattern})` : ''}.` })
      parameters.push({ name, value: null, description, secret })
      continue
    }
    const value = proposal?.value ?? (p.Default === undefined ? null : String(p.Default))
    if (proposal) filled.Parameters[name] = { ...p, Default: proposal.value }
    // A required parameter the service has no value for, and no default (a template change).
    if (value === null) missing.push({ parameter: name, reason: `The template's parameter ${name} has no default and the service has no value for it: fill it in.` })
    parameters.push({ name, value, description, secret })
  }

  if (!service.templateUrl) {
    missing.push({ parameter: TEMPLATE_URL_ITEM, reason: 'Quick-create links need the generic member template at an https URL the account owners can read: publish src/modules/settings/member-template.json (the same template without any account\'s defaults) in S3 and set MEMBER_TEMPLATE_URL to its URL.' })
  }

  const regionNames = account.regions.length > 0 ? account.regions : [service.region]
  if (account.regions.length === 0) notes.push(`The account lists no regions: the stack goes to the service's region ${service.region}. List the account's regions (edit it) to deliver their events too.`)
  const roleArn = `arn:${partition}:iam::${account.account_id}:role/${service.memberRoleName}`
  const roleArnMatches = account.role_arn === roleArn
  if (!roleArnMatches) notes.push(`The account is registered with role_arn ${account.role_arn}, but the stack creates ${roleArn}: update the account's role_arn (the connection test assumes the registered one, and the service may only assume roles named ${service.memberRoleName}).`)

  // Link values: every non-secret parameter that has one, in template order, CreateRole per region.
  const known = parameters.filter(p => !p.secret && p.value !== null) as Array<OnboardingParameter & { value: string }>
  const linkable = missing.length === 0
  const regions: OnboardingRegion[] = regionNames.map((region, i) => {
    const createRole = i === 0
    return {
      region,
      create_role: createRole,
      quick_create_url: linkable
        ? quickCreateUrl({
          partition,
          region,
          templateUrl: service.templateUrl!,
          stackName: MEMBER_STACK_NAME,
          parameters: known.map(p => [p.name, p.name === P.createRole ? String(createRole) : p.value])
        })
        : null
    }
  })

  // Commands: a missing value is a <Name> placeholder, the API key always is one.
  const valueOf = (p: OnboardingParameter): string => p.secret ? API_KEY_PLACEHOLDER : p.value ?? `<${p.name}>`
  // The values the service gives or lacks (not those left at the template's default), then the key.
  const given = parameters.filter(p => !p.secret && p.name !== P.createRole && (proposed.has(p.name) || p.value === null))
  const apiKey = parameters.find(p => p.name === P.apiKey)
  const deploy = [
    `# Save the template as ${MEMBER_TEMPLATE_FILE}, then (ApiKey: the account's ingestion API key):`,
    ...regions.map(r => [
      'aws cloudformation deploy',
      `--region ${r.region}`,
      `--stack-name ${MEMBER_STACK_NAME}`,
      `--template-file ${MEMBER_TEMPLATE_FILE}`,
      '--capabilities CAPABILITY_NAMED_IAM',
      '--parameter-overrides',
      ...given.map(p => shellWord(`${p.name}=${valueOf(p)}`)),
      ...(apiKey ? [shellWord(`${apiKey.name}=${valueOf(apiKey)}`)] : []),
      `${P.createRole}=${r.create_role}`
    ].join(' '))
  ].join('\n')

  // StackSet: account-specific values (external id, key, CreateRole) are per stack instance.
  const perAccount = new Set<string>([P.externalId, P.apiKey, P.createRole])
  const kv = (name: string, value: string): string => shellWord(`ParameterKey=${name},ParameterValue=${value}`)
  const setWide = given.filter(p => !perAccount.has(p.name))
  const targets = shellWord(`OrganizationalUnitIds=<ou-id>,Accounts=${account.account_id},AccountFilterType=INTERSECTION`)
  const externalId = parameters.find(p => p.name === P.externalId)
  const stackSet = [
    '# AWS Organizations, from the management account or a delegated administrator (service-managed permissions):',
    [
      'aws cloudformation create-stack-set',
      `--stack-set-name ${MEMBER_STACK_NAME}`,
      '--permission-model SERVICE_MANAGED',
      '--auto-deployment Enabled=false',
      '--capabilities CAPABILITY_NAMED_IAM',
      service.templateUrl ? `--template-url ${shellWord(service.templateUrl)}` : `--template-body file://${MEMBER_TEMPLATE_FILE}`,
      '--parameters',
      ...setWide.map(p => kv(p.name, valueOf(p))),
      // Placeholders the stack instances override (they meet the parameters' constraints).
      kv(P.externalId, 'unset'),
      kv(P.apiKey, 'unset-unset-unset')
    ].join(' '),
    ...regions.map(r => [
      'aws cloudformation create-stack-instances',
      `--stack-set-name ${MEMBER_STACK_NAME}`,
      `--deployment-targets ${targets}`,
      `--regions ${r.region}`,
      '--parameter-overrides',
      ...(externalId ? [kv(P.externalId, valueOf(externalId))] : []),
      kv(P.apiKey, API_KEY_PLACEHOLDER),
      kv(P.createRole, String(r.create_role))
    ].join(' '))
  ].join('\n')

  const [home, ...others] = regions.map(r => r.region)
  const steps = [
    `Sign in to AWS account ${account.account_id} with permission to create IAM roles, EventBridge rules and CloudFormation stacks.`,
    'Have the account\'s ingestion API key at hand. It is not shown here, and cannot be shown again; it was shown once when the account was registered or its key last rotated. If it is lost, rotate the key (Rotate key in the console) and use the new one.',
    ...(missing.some(m => m.parameter !== TEMPLATE_URL_ITEM) ? [`Fill in what the service could not: ${missing.filter(m => m.parameter !== TEMPLATE_URL_ITEM).map(m => m.parameter).join(', ')} (see below).`] : []),
    `Create the stack ${MEMBER_STACK_NAME} in ${home} first, with CreateRole=true: it also creates the read-only role (IAM is global).${others.length ? ` Then in ${others.join(', ')} with CreateRole=false.` : ''} ${linkable ? 'Use the quick-create links (paste the API key into ApiKey and acknowledge that the stack creates a named IAM role), or save' : 'Save'} the template as ${MEMBER_TEMPLATE_FILE} and run the AWS CLI commands.`,
    `Make sure the account is registered with role_arn ${roleArn} (the stack's RoleArn output).`,
    'Run Test connection: it assumes the role and checks the rule, its target and the API destination in every region.',
    'Watch Ingestion health: events arrive as alarms change state and findings are reported.'
  ]

  return {
    account_id: account.account_id,
    stack_name: MEMBER_STACK_NAME,
    role_arn: roleArn,
    role_arn_matches: roleArnMatches,
    template_url: service.templateUrl ?? null,
    parameters,
    regions,
    commands: { deploy, stack_set: stackSet },
    steps,
    missing,
    notes,
    template: filled
  }
}
