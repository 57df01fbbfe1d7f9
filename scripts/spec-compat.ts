/**
 * The breaking-change guard (`npm run spec:compat`, a CI step): compares docs/api-specification.yaml
 * with the released copy openapi/released/api-specification.yaml and checks that info.version
 * announces what changed. Partner teams generate clients from the spec.
 *
 * Policy (semver on info.version, relative to the released copy):
 *   - a breaking change needs a major bump (1.4.2 → 2.0.0): otherwise exit 1;
 *   - info.version never goes below the released one, whatever changed: otherwise exit 1;
 *   - non-breaking changes (or patch-level ones) under an unchanged version: exit 0 with a notice
 *     that the next release must bump minor (patch when there are only patch-level changes).
 * Breaking: a removed operation, response status, parameter, content type or response property;
 * a removed enum value (request or response) or a new one in a response; a new required request
 * field; a request schema that accepts less (narrowed type, new or stricter maxLength, pattern,
 * minimum, ..., a removed property where additionalProperties is false); a response that may hold
 * more; a role removed from x-roles. The comparison is `redocly diff` (@redocly/cli) with the guard's
 * own checks where it misses a case: scripts/lib/spec-compat.ts; the policy: docs/clients.md.
 *
 * Prints each breaking change with its operation and JSON pointer (through resolved $refs, where an
 * operation meets it) and where it is written, then `N breaking, N non-breaking, N patch`.
 *
 *   tsx scripts/spec-compat.ts [--released FILE] [--current FILE] [--all]
 *   --all  also print every non-breaking and patch-level change
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { compareFiles, formatReport } from './lib/spec-compat.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const currentPath = path.join(root, 'docs', 'api-specification.yaml')
export const releasedPath = path.join(root, 'openapi', 'released', 'api-specification.yaml')

export interface Options { released: string, current: string, all: boolean }

export function parseArgs (args: string[]): Options {
  const value = (flag: string, fallback: string): string => {
    const i = args.indexOf(flag)
    if (i < 0) return fallback
    const v = args[i + 1]
    if (!v) throw new Error(`${flag} needs a file`)
    return path.resolve(v)
  }
  return { released: value('--released', releasedPath), current: value('--current', currentPath), all: args.includes('--all') }
}

/** Runs the guard; resolves to the exit code. */
export async function run (args: string[], log: (line: string) => void = console.log): Promise<number> {
  const opts = parseArgs(args)
  if (!existsSync(opts.released)) {
    log(`spec:compat: no released copy at ${path.relative(root, opts.released)}: npm run spec:release creates it`)
    return 1
  }
  const report = await compareFiles(opts.released, opts.current)
  log(`spec:compat: ${path.relative(root, opts.current)} against the released ${path.relative(root, opts.released)}`)
  for (const line of formatReport(report, opts.all ? { limit: Infinity, patch: true } : {})) log(line)
  return report.ok ? 0 : 1
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  run(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exitCode = 2
  })
}
