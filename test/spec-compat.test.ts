/**
 * The breaking-change guard (scripts/lib/spec-compat.ts, `npm run spec:compat` in CI): each
 * deliberately breaking mutation of the real spec fails under an unchanged info.version and passes
 * under a major bump; additive changes pass with a notice; the current spec passes against the
 * released copy openapi/released/api-specification.yaml. Each comparison runs `redocly diff` in a
 * child process, two at a time.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { parse } from 'yaml'
import { compareSpecs, formatReport, judge, securityChanges, rolesChanges, parseVersion, compareVersions, type CompatReport, type ChangeType } from '../scripts/lib/spec-compat.js'
import { run } from '../scripts/spec-compat.js'

type Json = Record<string, any>

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const specFile = path.join(root, 'docs', 'api-specification.yaml')
const spec: Json = parse(readFileSync(specFile, 'utf8'))
const version: string = spec.info.version
const nextMajor = `${Number(version.split('.')[0]) + 1}.0.0`
const nextMinor = version.replace(/^(\d+)\.(\d+)\..*$/, (_, M: string, m: string) => `${M}.${Number(m) + 1}.0`)

/** The current spec with changes; info.version stays the current one (the base of these tests). */
const mutate = (...changes: Array<(d: Json) => void>): Json => {
  const d = structuredClone(spec)
  for (const change of changes) change(d)
  return d
}
const schemas = (d: Json): Json => d.components.schemas
const param = (d: Json, p: string, method: string, name: string): Json => d.paths[p][method].parameters.find((x: Json) => x.name === name)
/** A change of this type whose pointer (where an operation meets it) or definition matches. */
const reported = (r: CompatReport, type: ChangeType, where: RegExp): boolean =>
  r.changes.some(c => c.type === type && (where.test(c.pointer) || where.test(c.defined ?? '')))

/** Runs the comparisons two at a time (each is a `redocly diff` process). */
async function inPairs<T> (tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++
      results[i] = await tasks[i]!()
    }
  }
  await Promise.all([worker(), worker()])
  return results
}

/**
 * [what, mutation, where the guard must report a breaking change, run alone?]. Those run alone are
 * compared one by one under the same version; all of them are also compared at once under a major
 * bump. (Every comparison is a `redocly diff` process: the others are only run together, to keep
 * this file fast; the verdict counts breaking changes, so one reported alone or among others fails
 * the same way, see judge.)
 */
const BREAKING: Array<[string, (d: Json) => void, RegExp, boolean]> = [
  ['removed operation', d => { delete d.paths['/api/users/{id}'].delete }, /^\/paths\/~1api~1users~1\{id\}\/delete$/, true],
  ['removed response status', d => { delete d.paths['/api/users/{id}'].get.responses['404'] }, /^\/paths\/~1api~1users~1\{id\}\/get\/responses\/404$/, true],
  ['removed response property (optional)', d => { delete schemas(d).CreatedUser.properties.temporary_password },
    /^\/paths\/~1api~1users\/post\/responses\/201\/content\/application~1json\/schema\/properties\/temporary_password$/, true],
  ['removed enum value in a response', d => { schemas(d).Health.properties.status.enum = ['ok'] },
    /^\/paths\/~1api~1health\/get\/responses\/200\/.*\/properties\/status\/enum$/, true],
  ['removed enum value in a query parameter', d => { param(d, '/api/events', 'get', 'time_field').schema.enum = ['occurred_at'] },
    /^\/paths\/~1api~1events\/get\/parameters\/\d+\/schema\/enum$/, false],
  ['new required request body field', d => { schemas(d).CreateUserRequest.required.push('password') },
    /^\/paths\/~1api~1users\/post\/requestBody\/content\/application~1json\/schema\/required$/, true],
  ['new required parameter', d => { d.paths['/api/users'].get.parameters.push({ name: 'team', in: 'query', required: true, schema: { type: 'string' } }) },
    /^\/paths\/~1api~1users\/get\/parameters\/\d+$/, false],
  ['narrowed parameter type (string → integer)', d => { d.components.parameters.Cursor.schema.type = 'integer' },
    /^#\/components\/parameters\/Cursor\/schema\/type/, false],
  ['stricter request maxLength', d => { schemas(d).LoginRequest.properties.password.maxLength = 64 },
    /^\/paths\/~1api~1auth~1login\/post\/requestBody\/.*\/properties\/password\/maxLength$/, true],
  ['removed request property under additionalProperties: false', d => { delete schemas(d).ChangePasswordRequest.properties.current_password },
    /^\/paths\/~1api~1auth~1change-password\/post\/requestBody\/.*\/properties\/current_password$/, false],
  ['removed enum value in a request body', d => { schemas(d).Role.enum = ['admin', 'user'] }, /^#\/components\/schemas\/Role\/enum/, false],
  ['narrowed request body type (string → integer)', d => { schemas(d).UpdateUserRequest.properties.name.type = 'integer' },
    /^\/paths\/~1api~1users~1\{id\}\/put\/requestBody\/.*\/properties\/name\/type$/, true],
  ['request field no longer nullable', d => { schemas(d).CreateTaskFromEventRequest.properties.due_at.type = 'string' },
    /^\/paths\/~1api~1events~1\{id\}~1create-task\/post\/requestBody\/.*\/properties\/due_at\/type$/, false],
  ['new request pattern', d => { schemas(d).LogoutRequest.properties.refresh_token.pattern = '^[A-Za-z0-9_-]+$' },
    /^\/paths\/~1api~1auth~1logout\/post\/requestBody\/.*\/properties\/refresh_token\/pattern$/, false],
  ['stricter parameter minimum', d => { d.components.parameters.Limit.schema.minimum = 5 }, /^#\/components\/parameters\/Limit\/schema\/minimum/, false],
  ['removed path (its operations)', d => { delete d.paths['/api/tasks/{id}/history'] }, /^\/paths\/~1api~1tasks~1\{id\}~1history\/get$/, false],
  ['public operation now needs a token', d => { delete d.paths['/api/health'].get.security }, /^\/paths\/~1api~1health\/get\/security$/, false],
  ['role removed from x-roles', d => { d.paths['/api/users'].get['x-roles'] = ['admin'] }, /^\/paths\/~1api~1users\/get\/x-roles$/, false]
]
const ALONE = BREAKING.filter(([, , , alone]) => alone)

const ADDITIVE = mutate(
  d => { schemas(d).CreateUserRequest.properties.team = { type: 'string', maxLength: 64 } },
  d => { d.paths['/api/teams'] = { get: { operationId: 'listTeams', responses: { 200: { description: 'The teams.' } } } } },
  d => { schemas(d).UserProfile.properties.team = { type: ['string', 'null'], maxLength: 64 } },
  d => { d.paths['/api/users'].get.parameters.push({ name: 'team', in: 'query', required: false, schema: { type: 'string' } }) },
  d => { schemas(d).LoginRequest.properties.password.maxLength = 256 },
  d => { d.paths['/api/users'].get['x-roles'].push('user') }
)

// Every comparison of this file, two at a time, before the assertions.
const cli: string[] = []
const [alone, all, additive, cliExit] = await (async () => {
  const results = await inPairs<CompatReport | number>([
    () => run([], line => cli.push(line)),
    () => compareSpecs(spec, mutate(...BREAKING.map(([, change]) => change), d => { d.info.version = nextMajor })),
    () => compareSpecs(spec, ADDITIVE),
    ...ALONE.map(([, change]) => () => compareSpecs(spec, mutate(change)))
  ])
  const [exit, allReport, additiveReport, ...aloneReports] = results
  return [aloneReports as CompatReport[], allReport as CompatReport, additiveReport as CompatReport, exit as number] as const
})()

t.test('breaking changes fail under the same version, and a minor bump; under a major bump they pass', async t => {
  ALONE.forEach(([what, , where], i) => {
    const r = alone[i]!
    t.notOk(r.ok, `${what}: fails under ${version}`)
    t.ok(reported(r, 'breaking', where), `${what}: reported as breaking at ${where}`)
    t.match(r.messages.join('\n'), /breaking change\(s\) not announced.*next major version/, `${what}: says what is missing`)
    t.notOk(judge(r.counts, version, nextMinor).ok, `${what}: a minor bump fails`)
  })
  for (const [what, , where] of BREAKING) t.ok(reported(all, 'breaking', where), `${what}: reported as breaking among all the others`)
  t.ok(all.ok, `all of them under ${nextMajor} pass: ${all.messages.join(' ')}`)
  t.match(all.messages.join('\n'), /breaking change\(s\) announced by the major version/)
  t.notOk(judge(all.counts, version, version).ok, 'and fail under the same version')
})

t.test('additive changes pass under the same version, with a notice that the next release bumps minor', async t => {
  const r = additive
  t.ok(r.ok, r.messages.join(' '))
  t.equal(r.counts.breaking, 0, 'nothing breaking')
  t.ok(reported(r, 'non-breaking', /^\/paths\/~1api~1users\/post\/requestBody\/.*\/properties\/team$/), 'new optional request field')
  t.ok(reported(r, 'non-breaking', /^\/paths\/~1api~1teams\/get$/), 'new operation')
  t.ok(reported(r, 'non-breaking', /\/responses\/200\/.*\/properties\/team$/), 'new response field')
  t.ok(reported(r, 'non-breaking', /^\/paths\/~1api~1users\/get\/parameters\/\d+$/), 'new optional parameter')
  t.ok(reported(r, 'non-breaking', /^\/paths\/~1api~1users\/get\/x-roles$/), 'role added to x-roles')
  t.ok(r.changes.some(c => /\/properties\/password\/maxLength$/.test(c.pointer) && c.type !== 'breaking'), 'looser request limit')
  t.match(r.messages.join('\n'), /next release must bump minor/, 'notice')
})

t.test('the guard\'s own checks: effective security per operation, x-roles', async t => {
  const base = { security: [{ bearerAuth: [] }], paths: { '/a/{id}': { get: { security: [] }, put: {}, post: { 'x-roles': ['admin', 'user'] } } } }
  const types = (changes: Array<{ type: string }>): string[] => changes.map(c => c.type)
  t.same(types(securityChanges(base, { ...base, paths: { '/a/{x}': { get: {}, put: {}, post: {} } } })), ['breaking'], 'security: [] dropped: the root token applies')
  t.same(types(securityChanges(base, { ...base, paths: { '/a/{id}': { get: { security: [] }, put: { security: [] }, post: {} } } })), ['non-breaking'], 'now public')
  t.same(types(securityChanges(base, { ...base, paths: { '/a/{id}': { get: { security: [] }, put: { security: [{ bearerAuth: [] }, { apiKey: [] }] }, post: {} } } })), ['non-breaking'], 'another way in')
  t.same(types(securityChanges(base, { ...base, paths: { '/a/{id}': { get: { security: [] }, put: { security: [{ bearerAuth: ['admin'] }] }, post: {} } } })), ['breaking'], 'a scope more')
  t.same(securityChanges(base, { paths: { '/a/{id}': { get: { security: [] }, put: { security: [{ bearerAuth: [] }] }, post: { security: [{ bearerAuth: [] }] } } } }), [], 'root requirement moved into the operations: no change')
  t.same(types(rolesChanges(base, { paths: { '/a/{id}': { get: {}, put: {}, post: { 'x-roles': ['admin'] } } } })), ['breaking'], 'role removed')
  t.same(types(rolesChanges(base, { paths: { '/a/{id}': { get: {}, put: {}, post: { 'x-roles': ['admin', 'user', 'manager'] } } } })), ['non-breaking'], 'role added')
})

t.test('the version policy', async t => {
  const counts = (breaking: number, nonBreaking: number, patch: number): CompatReport['counts'] => ({ breaking, 'non-breaking': nonBreaking, patch })
  t.notOk(judge(counts(0, 0, 1), '1.2.0', '1.1.9').ok, 'info.version never goes down')
  t.notOk(judge(counts(0, 0, 0), '1.0.0', 'v1').ok, 'not a semantic version')
  t.match(judge(counts(0, 0, 2), '1.0.0', '1.0.0').messages.join(), /next release must bump patch \(1\.0\.1\)/, 'patch-level only: patch')
  t.match(judge(counts(0, 1, 0), '1.0.0', '1.0.1').messages.join(), /patch bump, but the changes need at least minor/, 'a patch bump for a feature: notice')
  t.ok(judge(counts(1, 0, 0), '1.0.0', '2.0.0-rc.1').ok, 'a prerelease of the next major announces')
  t.notOk(judge(counts(0, 0, 0), '1.0.0', '1.0.0-rc.1').ok, '1.0.0-rc.1 is lower than 1.0.0')
  t.ok(compareVersions(parseVersion('1.0.0-rc.2')!, parseVersion('1.0.0-rc.10')!) < 0, 'numeric prerelease identifiers')
  t.same(judge(counts(0, 0, 0), '1.0.0', '1.0.0'), { ok: true, requiredBump: 'none', actualBump: 'none', messages: [] }, 'no change: silent')
})

t.test('npm run spec:compat: the current spec passes against the released copy', async t => {
  t.equal(cliExit, 0, cli.join('\n'))
  t.match(cli.at(-1), /^ok: \d+ breaking, \d+ non-breaking, \d+ patch \(info\.version \S+, released \S+\)$/, 'ok (breaking changes since the release are announced by the major version)')
  const missing: string[] = []
  t.equal(await run(['--released', path.join(t.testdir(), 'none.yaml')], line => missing.push(line)), 1, 'no released copy: exit 1')
  t.match(missing.join(), /no released copy.*npm run spec:release/)
})

t.test('the printed report: each breaking change with its operation and JSON pointer, then the counts', async t => {
  const removed = formatReport(alone[ALONE.findIndex(([what]) => what === 'removed response status')]!).join('\n')
  t.match(removed, /^Breaking changes \(1\):\n {2}GET \/api\/users\/\{id\} {2}\/paths\/~1api~1users~1\{id\}\/get\/responses\/404\n {6}Response `404` was removed\. \(response-removed\)$/m)
  t.match(removed, /^FAILED: 1 breaking, 0 non-breaking, 0 patch \(info\.version \S+, released \S+\)$/m)
  const text = formatReport(all).join('\n')
  t.match(text, /^ {2}GET \/api\/tasks\/\{id\}\/history {2}\/paths\/~1api~1tasks~1\{id\}~1history\/get\n {6}Operation `GET \/api\/tasks\/\{id\}\/history` was removed \(with its path\)\./m)
  t.match(text, /^ {6}at #\/components\/parameters\/Limit\/schema\/minimum, line \d+ of the released spec$/m, 'where a shared component is written')
  t.match(text, /^ok: \d+ breaking, \d+ non-breaking, \d+ patch/m)
})
