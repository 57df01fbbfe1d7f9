import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { App } from 'aws-cdk-lib'
import { DEFAULT_MEMBER_ROLE_NAME } from './config.js'
import { ROOT } from './bundling.js'
import { defineMemberStack } from './member-stack.js'

type Json = Record<string, any>

/** cdk.json's context (the feature flags `npm run synth` uses), so the template is the one `synth` writes. */
export async function cdkContext (): Promise<Json> {
  return (JSON.parse(await readFile(path.join(ROOT, 'cdk.json'), 'utf8')) as { context: Json }).context
}

/**
 * The member-account stack's CloudFormation template, synthesised as `npm run synth` does
 * (cdk.json's context; without the CLI's `aws:cdk:path` metadata), with `roleName` as the
 * RoleName default. Offline; no AWS credentials.
 */
export async function synthMemberTemplate (roleName = DEFAULT_MEMBER_ROLE_NAME): Promise<Json> {
  const outdir = await mkdtemp(path.join(tmpdir(), 'cmc-member-'))
  try {
    const app = new App({ outdir, context: await cdkContext() })
    const stack = defineMemberStack(app, roleName)
    return app.synth().getStackArtifact(stack.artifactId).template as Json
  } finally {
    await rm(outdir, { recursive: true, force: true })
  }
}
