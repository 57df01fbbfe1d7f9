/**
 * Writes the member-account stack's CloudFormation template (infra/lib/member-stack.ts,
 * synthesised with the CDK as `npm run synth` does) to a committed JSON file that the service
 * imports: `GET /api/config/aws-accounts/{id}/onboarding` hands it out with the account's
 * values as parameter defaults. The service never runs the CDK; this keeps the two in step.
 *
 *   tsx scripts/generate-member-template.ts          write src/modules/settings/member-template.json
 *   tsx scripts/generate-member-template.ts --check  exit 1 when the committed file is stale
 *
 * Not part of the service's build (tsconfig.build.json excludes it): it needs infra/ and aws-cdk-lib.
 */
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { synthMemberTemplate } from '../infra/lib/member-template.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const memberTemplatePath = path.join(root, 'src', 'modules', 'settings', 'member-template.json')

/** The file's text: the template as 2-space JSON with a final newline. */
export const memberTemplateText = async (): Promise<string> => `${JSON.stringify(await synthMemberTemplate(), null, 2)}\n`

async function main (): Promise<void> {
  const text = await memberTemplateText()
  const rel = path.relative(root, memberTemplatePath)
  if (process.argv.includes('--check')) {
    const current = await readFile(memberTemplatePath, 'utf8').catch(() => '')
    if (current !== text) {
      console.error(`${rel} is stale (infra/lib/member-stack.ts changed): run npm run generate:member and commit the result.`)
      process.exit(1)
    }
    console.log(`${rel} is up to date`)
  } else {
    await writeFile(memberTemplatePath, text)
    console.log(`wrote ${rel}`)
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch(err => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(1)
  })
}
