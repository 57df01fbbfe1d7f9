/**
 * The breaking-change guard of docs/api-specification.yaml: compares the current spec with the
 * released copy (openapi/released/api-specification.yaml) and judges the change of info.version.
 *
 * Policy (semver on info.version, relative to the released copy):
 *   - a breaking change needs a major bump (1.4.2 → 2.0.0);
 *   - any change needs a version ≥ the released one (it never goes down);
 *   - non-breaking changes under an unchanged version pass, with a notice that the next release
 *     must bump minor (patch-level changes only: patch).
 *
 * Partner teams generate clients from the spec, so "breaking" means: a client generated from the
 * released spec, or code written against it, can fail. A request may only accept more, a response
 * may only promise more, and nothing a generated client names may disappear:
 *   breaking (major)  removed operation, response status, parameter, media type, response header;
 *     a changed operationId (generated clients name their methods after it);
 *     removed response property, or one no longer required; removed enum value (request or
 *     response) or a new one in a response; new required request field (body property or
 *     parameter); a request that accepts less (narrowed type, new or stricter maxLength, pattern,
 *     minimum, enum, ..., additionalProperties → false, a removed request property where
 *     additionalProperties is false); a response that may hold more (wider type, looser limit);
 *     an operation that needs more credentials, or a role removed from x-roles.
 *   non-breaking (minor)  new operation, response status, optional parameter or request property,
 *     new response property, a deprecation, looser security, a role added to x-roles.
 *   patch  descriptions, examples, tags, info, a looser request limit, a request field made
 *     nullable, a changed default, a removed request property where unknown properties are
 *     accepted, a new unused component. Other x- extensions are not compared.
 *
 * How: `redocly diff` (@redocly/cli, already a devDependency; "experimental" in 2.77) computes the
 * diff through resolved $refs, matches operations, parameters and media types, rates each change
 * major / minor / patch with a rule id, and reports a change of a shared component once, at its
 * first use. Tested on this spec it misses two cases, supplemented here:
 *   - a value removed from a response-only enum is rated patch (a response promising less): it
 *     is breaking here, since generated clients name every enum value (`classifyOne`);
 *   - an operation that drops `security: []` (and so falls back to the root bearer requirement)
 *     is rated patch: security is judged here per operation on the effective requirement
 *     (`securityChanges`), and redocly's security changes are dropped;
 * and it ignores x- extensions, so the project's access policy x-roles is compared here
 * (`rolesChanges`). A deprecation (rated patch) counts as minor, as semver says. A removed (or
 * added) path is listed operation by operation.
 *
 * api-smart-diff (npm) was evaluated first and not kept: on this spec it applies request rules to
 * schemas in responses reached through components/responses (a new Problem.code non-breaking, a
 * stricter Problem limit breaking), calls a response or parameter type change (string → integer),
 * a removed request property under additionalProperties: false and a removed optional response
 * property non-breaking, and a request field made nullable breaking. openapi-diff refuses
 * OpenAPI 3.1.
 */
import { execFile } from 'node:child_process'
import { createRequire } from 'node:module'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { parse } from 'yaml'

type Json = Record<string, any>

export type ChangeType = 'breaking' | 'non-breaking' | 'patch'

export interface Change {
  type: ChangeType
  kind: 'added' | 'removed' | 'modified'
  /** JSON pointer of the change in the API, through resolved $refs: where an operation meets it. */
  pointer: string
  /** `DELETE /api/users/{id}` when the change is inside an operation. */
  operation?: string
  /** Where it is written: `#/components/schemas/Role/enum, line 2692` of the released (or, when added, current) spec. */
  defined?: string
  /** What changed, e.g. ``Enum of `role` lost values: 'manager'.`` */
  detail: string
  /** The redocly rule, or `spec-compat/…` for this guard's own checks. */
  rule?: string
}

export type Bump = 'none' | 'patch' | 'minor' | 'major'

export interface Verdict {
  ok: boolean
  /** The smallest bump of info.version the changes need at the next release. */
  requiredBump: Bump
  /** The bump from the released version to the current one. */
  actualBump: Bump | 'lower'
  /** Errors when not ok, notices otherwise. */
  messages: string[]
}

export interface CompatReport extends Verdict {
  releasedVersion: string
  currentVersion: string
  changes: Change[]
  counts: Record<ChangeType, number>
}

// ------------------------------------------------------------------------------ versions

export interface SemVer { major: number, minor: number, patch: number, prerelease: string[] }

export function parseVersion (version: unknown): SemVer | undefined {
  const m = typeof version === 'string'
    ? /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/.exec(version)
    : null
  if (!m) return undefined
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), prerelease: m[4] ? m[4].split('.') : [] }
}

/** Semver precedence: negative when a < b, 0 when equal (build metadata ignored), positive when a > b. */
export function compareVersions (a: SemVer, b: SemVer): number {
  for (const k of ['major', 'minor', 'patch'] as const) if (a[k] !== b[k]) return a[k] - b[k]
  if (!a.prerelease.length || !b.prerelease.length) return b.prerelease.length - a.prerelease.length
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i]
    const y = b.prerelease[i]
    if (x === undefined) return -1
    if (y === undefined) return 1
    if (x === y) continue
    const nx = /^\d+$/.test(x)
    const ny = /^\d+$/.test(y)
    if (nx && ny) return Number(x) - Number(y)
    if (nx !== ny) return nx ? -1 : 1
    return x < y ? -1 : 1
  }
  return 0
}

export const BUMPS: Bump[] = ['none', 'patch', 'minor', 'major']

function bumpBetween (released: SemVer, current: SemVer): Bump | 'lower' {
  const cmp = compareVersions(current, released)
  if (cmp < 0) return 'lower'
  if (cmp === 0) return 'none'
  if (current.major > released.major) return 'major'
  if (current.minor > released.minor) return 'minor'
  return 'patch'
}

const nextVersion = (v: SemVer, bump: Bump): string =>
  bump === 'major' ? `${v.major + 1}.0.0` : bump === 'minor' ? `${v.major}.${v.minor + 1}.0` : `${v.major}.${v.minor}.${v.patch + 1}`

/** The policy, on counted changes and the two versions. */
export function judge (counts: Record<ChangeType, number>, releasedVersion: unknown, currentVersion: unknown): Verdict {
  const requiredBump: Bump = counts.breaking ? 'major' : counts['non-breaking'] ? 'minor' : counts.patch ? 'patch' : 'none'
  const released = parseVersion(releasedVersion)
  const current = parseVersion(currentVersion)
  if (!released || !current) {
    const bad = released ? `info.version ${JSON.stringify(currentVersion)}` : `the released info.version ${JSON.stringify(releasedVersion)}`
    return { ok: false, requiredBump, actualBump: 'none', messages: [`${bad} is not a semantic version (MAJOR.MINOR.PATCH)`] }
  }
  const actualBump = bumpBetween(released, current)
  const messages: string[] = []
  if (actualBump === 'lower') {
    messages.push(`info.version ${currentVersion} is lower than the released ${releasedVersion}: it never goes down`)
    return { ok: false, requiredBump, actualBump, messages }
  }
  if (counts.breaking) {
    if (actualBump !== 'major') {
      messages.push(`${counts.breaking} breaking change(s) not announced: info.version is ${currentVersion}, released ${releasedVersion}; ` +
        `a breaking change needs the next major version (${nextVersion(released, 'major')}), or undo the change`)
      return { ok: false, requiredBump, actualBump, messages }
    }
    messages.push(`${counts.breaking} breaking change(s) announced by the major version ${currentVersion} (released ${releasedVersion})`)
  } else if (actualBump === 'none' && requiredBump !== 'none') {
    messages.push(`notice: the spec changed under the released version ${releasedVersion}: the next release must bump ${requiredBump} (${nextVersion(released, requiredBump)})`)
  } else if (BUMPS.indexOf(actualBump) < BUMPS.indexOf(requiredBump)) {
    messages.push(`notice: ${releasedVersion} → ${currentVersion} is a ${actualBump} bump, but the changes need at least ${requiredBump} (${nextVersion(released, requiredBump)})`)
  }
  return { ok: true, requiredBump, actualBump, messages }
}

// ------------------------------------------------------------------------------ redocly diff

/** The parts of `redocly diff --format json` (reportVersion 1) this guard reads. */
interface RedoclyLocation { file?: string, pointer?: string, line?: number, value?: unknown }
interface RedoclyChange {
  path: string
  typeName?: string
  kind: 'added' | 'removed' | 'modified'
  impact: 'major' | 'minor' | 'patch'
  property?: string
  verdicts?: Array<{ ruleId: string, impact: string, message: string }>
  base?: RedoclyLocation
  revision?: RedoclyLocation
}
interface RedoclyReport { reportVersion: string, changes?: RedoclyChange[] }

const run = promisify(execFile)
const redoclyCli = path.join(path.dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin', 'cli.js')

/** Runs `redocly diff` on two files; its report. */
export async function redoclyDiff (releasedFile: string, currentFile: string): Promise<RedoclyReport> {
  const dir = await mkdtemp(path.join(tmpdir(), 'spec-compat-'))
  try {
    const out = path.join(dir, 'diff.json')
    // Without NODE_OPTIONS: a test runner's hooks there (tap's process tracking) would slow each run.
    const { NODE_OPTIONS: _, ...inherited } = process.env
    const env = { ...inherited, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NODE_NO_WARNINGS: '1' }
    await run(process.execPath, [redoclyCli, 'diff', path.resolve(releasedFile), path.resolve(currentFile), '--format', 'json', '--fail-on', 'none', '--lint-config', 'off', '-o', out],
      { env, cwd: dir, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 })
      .catch((err: { stderr?: string, message: string }) => { throw new Error(`redocly diff failed: ${err.stderr?.trim() || err.message}`) })
    const report = JSON.parse(await readFile(out, 'utf8')) as RedoclyReport
    if (report.reportVersion !== '1') throw new Error(`redocly diff: unknown report version ${report.reportVersion}`)
    return report
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// ------------------------------------------------------------------------------ classification

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const unescape = (s: string): string => s.replace(/~1/g, '/').replace(/~0/g, '~')
const escape = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1')

function operationOf (pointer: string): string | undefined {
  const [, paths, p, method] = pointer.split('/')
  return paths === 'paths' && p !== undefined && method !== undefined && METHODS.includes(method) ? `${method.toUpperCase()} ${unescape(p)}` : undefined
}

const quote = (values: unknown[]): string => values.map(v => typeof v === 'string' ? `'${v}'` : JSON.stringify(v)).join(', ')
const IMPACT: Record<string, ChangeType> = { major: 'breaking', minor: 'non-breaking', patch: 'patch' }

/** One redocly change, classified by the policy: none when a check of this guard judges it instead, one per operation of a path added or removed. */
function classify (c: RedoclyChange): Change[] {
  const pointer = c.path.replace(/^#/, '') + (c.property ? `/${escape(c.property)}` : '')
  // Security is judged per operation on the effective requirement (securityChanges).
  if (/^\/(paths\/[^/]+\/[a-z]+\/)?security(\/|$)/.test(pointer)) return []
  const item = c.kind === 'added' ? c.revision?.value : c.base?.value
  if (c.typeName === 'PathItem' && c.kind !== 'modified' && !c.property && item && typeof item === 'object') {
    const methods = METHODS.filter(m => m in item)
    if (methods.length) {
      return methods.map(m => ({
        ...classifyOne(c, `${pointer}/${m}`),
        detail: `Operation \`${m.toUpperCase()} ${unescape(pointer.split('/')[2] ?? '')}\` was ${c.kind} (with its path).`
      }))
    }
  }
  return [classifyOne(c, pointer)]
}

function classifyOne (c: RedoclyChange, pointer: string): Change {
  const at = c.kind === 'added' ? c.revision : c.base
  const rules = (c.verdicts ?? []).map(v => v.ruleId)
  const change: Change = {
    type: IMPACT[c.impact] ?? 'breaking',
    kind: c.kind,
    pointer,
    ...(operationOf(pointer) ? { operation: operationOf(pointer) } : {}),
    ...(at?.pointer ? { defined: `${at.pointer}${at.line ? `, line ${at.line}` : ''} of the ${c.kind === 'added' ? 'current' : 'released'} spec` } : {}),
    detail: (c.verdicts ?? []).map(v => v.message).join(' ') || `${c.typeName ?? 'node'} ${c.property ? `\`${c.property}\` ` : ''}${c.kind}`,
    ...(rules.length ? { rule: rules.join(', ') } : {})
  }
  const [before, after] = [c.base?.value, c.revision?.value]
  const responseEnum = c.property === 'enum' && c.kind === 'modified' && /\/responses\//.test(c.path)
  if (responseEnum && change.type !== 'breaking' && Array.isArray(before) && Array.isArray(after)) {
    // A value that a response no longer sends is a name that generated clients lose.
    const kept = new Set(after.map(v => JSON.stringify(v)))
    const lost = before.filter(v => !kept.has(JSON.stringify(v)))
    if (lost.length) return { ...change, type: 'breaking', detail: `Enum lost values: ${quote(lost)} (a value generated clients name).`, rule: 'spec-compat/response-enum-values-removed' }
  }
  if (c.property === 'deprecated' && after === true && change.type === 'patch') {
    return { ...change, type: 'non-breaking', detail: 'Deprecated (semver: a minor release announces it).', rule: 'spec-compat/deprecated' }
  }
  return change
}

type Requirement = Record<string, string[]>

/** The operations of both documents, matched by path (path parameter names aside) and method. */
function * commonOperations (released: Json, current: Json): Generator<[string, string, Json, Json]> {
  const key = (p: string): string => p.replace(/\{[^}]*\}/g, '{}')
  const currentPaths = new Map(Object.keys(current.paths ?? {}).map(p => [key(p), p]))
  for (const [p, item] of Object.entries<Json>(released.paths ?? {})) {
    const q = currentPaths.get(key(p))
    if (q === undefined) continue
    for (const m of METHODS) {
      const before = item?.[m]
      const after = current.paths[q]?.[m]
      if (before && after) yield [p, m, before, after]
    }
  }
}

/**
 * The security each operation needs: its own `security`, else the root one. Breaking when a client
 * that met one of the released alternatives meets none of the current ones.
 */
export function securityChanges (released: Json, current: Json): Change[] {
  const effective = (op: Json, doc: Json): Requirement[] => {
    const sec = op.security ?? doc.security
    return Array.isArray(sec) && sec.length ? sec : [{}]
  }
  const covers = (client: Requirement, needed: Requirement): boolean =>
    Object.entries(needed).every(([scheme, scopes]) => client[scheme] !== undefined && (scopes ?? []).every(s => client[scheme]?.includes(s)))
  const show = (reqs: Requirement[]): string => reqs.map(r => Object.keys(r).length ? Object.keys(r).join(' + ') : 'no credentials').join(' | ')
  const out: Change[] = []
  for (const [p, m, b, a] of commonOperations(released, current)) {
    const before = effective(b, released)
    const after = effective(a, current)
    if (JSON.stringify(before) === JSON.stringify(after)) continue
    const refused = before.filter(client => !after.some(needed => covers(client, needed)))
    out.push({
      type: refused.length ? 'breaking' : 'non-breaking',
      kind: 'modified',
      pointer: `/paths/${escape(p)}/${m}/security`,
      operation: `${m.toUpperCase()} ${p}`,
      detail: `Security ${show(before)} → ${show(after)}${refused.length ? `: a client with ${show(refused)} is refused.` : '.'}`,
      rule: 'spec-compat/security'
    })
  }
  return out
}

/** x-roles, the roles allowed to call each operation: one removed is refused from now on. */
export function rolesChanges (released: Json, current: Json): Change[] {
  const out: Change[] = []
  for (const [p, m, b, a] of commonOperations(released, current)) {
    const before: string[] = Array.isArray(b['x-roles']) ? b['x-roles'] : []
    const after: string[] = Array.isArray(a['x-roles']) ? a['x-roles'] : []
    const removed = before.filter(r => !after.includes(r))
    const added = after.filter(r => !before.includes(r))
    if (!removed.length && !added.length) continue
    out.push({
      type: removed.length ? 'breaking' : 'non-breaking',
      kind: 'modified',
      pointer: `/paths/${escape(p)}/${m}/x-roles`,
      operation: `${m.toUpperCase()} ${p}`,
      detail: [removed.length ? `Roles ${quote(removed)} may no longer call it.` : '', added.length ? `Roles ${quote(added)} may now call it.` : ''].filter(Boolean).join(' '),
      rule: 'spec-compat/x-roles'
    })
  }
  return out
}

export function countChanges (changes: Change[]): Record<ChangeType, number> {
  const counts: Record<ChangeType, number> = { breaking: 0, 'non-breaking': 0, patch: 0 }
  for (const c of changes) counts[c.type]++
  return counts
}

// ------------------------------------------------------------------------------ the guard

/** The guard on two spec files: the classified changes from `releasedFile` to `currentFile`, and the verdict on info.version. */
export async function compareFiles (releasedFile: string, currentFile: string): Promise<CompatReport> {
  const [released, current] = await Promise.all([releasedFile, currentFile].map(async f => parse(await readFile(f, 'utf8')) as Json))
  return compare(released!, current!, releasedFile, currentFile)
}

/** The guard on two documents in memory (written to a temporary directory for redocly). */
export async function compareSpecs (released: Json, current: Json): Promise<CompatReport> {
  const dir = await mkdtemp(path.join(tmpdir(), 'spec-compat-'))
  try {
    const files = [path.join(dir, 'released.json'), path.join(dir, 'current.json')] as const
    await Promise.all([writeFile(files[0], JSON.stringify(released)), writeFile(files[1], JSON.stringify(current))])
    return await compare(released, current, ...files)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function compare (released: Json, current: Json, releasedFile: string, currentFile: string): Promise<CompatReport> {
  // The same document (the spec as released): nothing to ask redocly.
  const diff = JSON.stringify(released) === JSON.stringify(current) ? { reportVersion: '1', changes: [] } : await redoclyDiff(releasedFile, currentFile)
  const changes = [
    ...(diff.changes ?? []).flatMap(classify),
    ...securityChanges(released, current),
    ...rolesChanges(released, current)
  ]
  const counts = countChanges(changes)
  return {
    releasedVersion: String(released.info?.version),
    currentVersion: String(current.info?.version),
    changes,
    counts,
    ...judge(counts, released.info?.version, current.info?.version)
  }
}

/** The report as printed: every breaking change, then up to `limit` of the others, then the verdict and the counts. */
export function formatReport (report: CompatReport, { limit = 30, patch = false } = {}): string[] {
  const out: string[] = []
  const section = (type: ChangeType, title: string, max: number): void => {
    const changes = report.changes.filter(c => c.type === type)
    if (!changes.length) return
    out.push(`${title} (${changes.length}):`)
    for (const c of changes.slice(0, max)) {
      out.push(`  ${[c.operation, c.pointer].filter(Boolean).join('  ')}`)
      out.push(`      ${c.detail}${c.rule ? ` (${c.rule})` : ''}`)
      if (c.defined && !c.pointer.startsWith(c.defined.split(',')[0]!.replace(/^#/, ''))) out.push(`      at ${c.defined}`)
    }
    if (changes.length > max) out.push(`  … and ${changes.length - max} more (--all)`)
  }
  section('breaking', 'Breaking changes', Infinity)
  section('non-breaking', 'Non-breaking changes', limit)
  if (patch) section('patch', 'Patch-level changes', limit)
  out.push(...report.messages)
  const { counts } = report
  out.push(`${report.ok ? 'ok' : 'FAILED'}: ${counts.breaking} breaking, ${counts['non-breaking']} non-breaking, ${counts.patch} patch ` +
    `(info.version ${report.currentVersion}, released ${report.releasedVersion})`)
  return out
}
