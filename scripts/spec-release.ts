/**
 * Declares the current spec released (`npm run spec:release`, at each release of the API):
 * copies docs/api-specification.yaml to openapi/released/api-specification.yaml, the base that
 * `npm run spec:compat` (CI) compares against. Refuses unless info.version went up by at least what
 * the changes need (semver: major for a breaking change, minor for a non-breaking one, patch for
 * patch-level changes only). Commit the copy together with the release.
 *
 *   tsx scripts/spec-release.ts [--released FILE] [--current FILE]
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { parse } from 'yaml'
import { BUMPS, compareFiles, formatReport } from './lib/spec-compat.js'
import { parseArgs } from './spec-compat.js'

/** Resolves to the exit code. */
export async function release (args: string[], log: (line: string) => void = console.log): Promise<number> {
  const opts = parseArgs(args)
  if (existsSync(opts.released)) {
    const report = await compareFiles(opts.released, opts.current)
    if (!report.changes.length && report.currentVersion === report.releasedVersion) {
      log(`spec:release: nothing to release: the spec is the released ${report.releasedVersion}`)
      return 0
    }
    const refuse = (why: string): number => {
      for (const line of formatReport(report)) log(line)
      log(`spec:release: not released: ${why}`)
      return 1
    }
    if (!report.ok) return refuse('see above')
    if (report.actualBump === 'lower' || report.actualBump === 'none' || BUMPS.indexOf(report.actualBump) < BUMPS.indexOf(report.requiredBump)) {
      return refuse(`info.version must go up by at least a ${report.requiredBump === 'none' ? 'patch' : report.requiredBump} bump (released ${report.releasedVersion}, now ${report.currentVersion})`)
    }
    log(`spec:release: ${report.releasedVersion} → ${report.currentVersion} (${report.counts.breaking} breaking, ${report.counts['non-breaking']} non-breaking, ${report.counts.patch} patch)`)
  }
  mkdirSync(path.dirname(opts.released), { recursive: true })
  copyFileSync(opts.current, opts.released)
  const version = (parse(readFileSync(opts.released, 'utf8')) as { info?: { version?: string } }).info?.version
  log(`spec:release: ${path.relative(process.cwd(), opts.released)} is now ${version}: commit it with the release`)
  return 0
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  release(process.argv.slice(2)).then(code => { process.exitCode = code }, (err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exitCode = 2
  })
}
