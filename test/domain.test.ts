/** Unit tests of framework-free rules: password policy, user policies, ETags, cursors, config. */
import t from 'tap'
import { passwordWeakness, assertPasswordAcceptable, assertPasswordWellFormed, normalizePassword, samePassword } from '../src/domain/password-policy.js'
import { assertCanUpdateUser, assertCanViewUser, assertCanDeactivateUser, removesActiveAdmin, addsActiveAdmin, normalizeEmail, toProfile, type User } from '../src/domain/users.js'
import { DomainError } from '../src/domain/errors.js'
import { etagOf, versionFromIfMatch } from '../src/lib/etag.js'
import { createCursorCodec, readPage } from '../src/db/pagination.js'
import { loadConfig } from '../src/config.js'
import { DEFAULT_MEMBER_ROLE_NAME, ingestionUrl, MEMBER_WIRING, sameEndpoint, SERVICE_URL_PATTERN } from '../src/domain/member-wiring.js'
import { buildOnboarding, quickCreateUrl, shellWord, type CfnTemplate } from '../src/domain/onboarding.js'
import { generateTemporaryPassword } from '../src/modules/users/users.service.js'
import { createTtlCache } from '../src/lib/ttl-cache.js'
import { createGate } from '../src/lib/gate.js'
import { newId, randomId } from '../src/lib/ids.js'
import { validateComponent } from './contract.js'

const code = (fn: () => unknown): string | undefined => {
  try {
    fn()
  } catch (err) {
    return err instanceof DomainError ? err.code : `non-domain: ${String(err)}`
  }
  return undefined
}
const asyncCode = async (fn: () => Promise<unknown>): Promise<string | undefined> => {
  try {
    await fn()
  } catch (err) {
    return err instanceof DomainError ? err.code : `non-domain: ${String(err)}`
  }
  return undefined
}

t.test('password policy', async t => {
  t.equal(await passwordWeakness('short'), 'must be at least 12 characters')
  t.equal(await passwordWeakness('x'.repeat(129)), 'must be at most 128 characters')
  t.equal(await passwordWeakness('aaaaaaaaaaaaaaaa'), 'is too repetitive')
  t.equal(await passwordWeakness('qwerty123456'), 'is too common', 'a common password')
  t.equal(await passwordWeakness('password1234!'), 'is too common', 'a common stem with digits appended')
  t.equal(await passwordWeakness('abcdabcdabcd'), 'is too repetitive', 'a short unit repeated')
  t.equal(await passwordWeakness('harold.jones.at.work', { email: 'harold.jones.at.work@example.com' }), 'must not contain the e-mail address')
  t.equal(await passwordWeakness('my name is Grace Hopper', { name: 'Grace Hopper' }), 'must not contain the user name')
  t.equal(await passwordWeakness('correct horse battery staple'), null, 'a passphrase is fine')
  t.equal(await passwordWeakness('ÄÖÜ-ß-€-漢字-絵文字'), null, 'length counts characters, not bytes; no composition rules')
  t.equal(await asyncCode(() => assertPasswordAcceptable('short', 'body/password')), 'password_policy')
  for (let i = 0; i < 20; i++) t.equal(await passwordWeakness(await generateTemporaryPassword()), null, 'generated passwords pass the policy')
})

t.test('password policy: Unicode variants of refused passwords are refused too (issue 15, finding 4)', async t => {
  // NFKC compatibility forms: fullwidth, mathematical and ligature letters are the plain ones.
  t.equal(await passwordWeakness('ｐａｓｓｗｏｒｄ１２３４'), 'is too common', 'fullwidth')
  t.equal(await passwordWeakness('ＱＷＥＲＴＹ123456'), 'is too common', 'fullwidth capitals')
  t.equal(await passwordWeakness('\u{1D429}\u{1D41A}\u{1D42C}\u{1D42C}\u{1D430}\u{1D428}\u{1D42B}\u{1D41D}1234'), 'is too common', 'mathematical bold letters')
  // Homoglyphs: Cyrillic and Greek letters that look Latin.
  t.equal(await passwordWeakness('p\u0430ssw\u043Erd1234'), 'is too common', 'Cyrillic а and о')
  t.equal(await passwordWeakness('\u0420\u0410SSW\u039FRD1234'), 'is too common', 'Cyrillic Р, А and Greek Ο')
  t.equal(await passwordWeakness('qw\u0435rty123456'), 'is too common', 'Cyrillic е')
  t.equal(await passwordWeakness('\u03C1assw\u03BFrd1234'), 'is too common', 'Greek ρ and ο')
  // Invisible format characters do not count and do not hide a common password.
  for (const [name, c] of [['zero-width space', '\u200B'], ['zero-width joiner', '\u200D'], ['soft hyphen', '\u00AD'], ['word joiner', '\u2060'],
    ['byte-order mark', '\uFEFF'], ['right-to-left override', '\u202E'], ['left-to-right mark', '\u200E'], ['variation selector', '\uFE0F'], ['tag character', '\u{E0041}']]) {
    t.equal(await passwordWeakness(`pass${c}word1234`), 'is too common', `${name} inside a common password`)
  }
  t.equal(await passwordWeakness('p\u200Ba\u200Bs\u200Bs\u200Bw\u200Bo\u200Br\u200Bd\u200B1234'), 'is too common', 'one between every letter')
  t.equal(await passwordWeakness('shortpw\u200B\u200B\u200B\u200B\u200B\u200B'), 'must be at least 12 characters', 'invisible characters do not count toward the length')
  t.equal(await passwordWeakness('\u200B'.repeat(20)), 'must be at least 12 characters')
  t.equal(await passwordWeakness('ｐａｓ\u200Bｓｗ\u043Erd1234'), 'is too common', 'all three at once')
  // The e-mail and name checks see through the same disguises.
  t.equal(await passwordWeakness('h\u0430rold.jones.at.work!', { email: 'harold.jones.at.work@example.com' }), 'must not contain the e-mail address', 'homoglyph e-mail')
  t.equal(await passwordWeakness('my name is Ｇｒａｃｅ Ｈｏｐｐｅｒ', { name: 'Grace Hopper' }), 'must not contain the user name', 'fullwidth name')
  t.equal(await passwordWeakness('my name is Gr\u200Bace Hopper', { name: 'Grace Hopper' }), 'must not contain the user name', 'zero-width in the name')
  t.equal(await passwordWeakness('greetings from grace hopper', { name: 'Gr\u0430ce Hopper' }), 'must not contain the user name', 'a homoglyph in the stored name')
  // Real non-Latin passphrases are still fine.
  t.equal(await passwordWeakness('мороз и солнце день чудесный'), null, 'a Cyrillic passphrase')
  t.equal(await passwordWeakness('γλαύκα της Αθηνάς σοφή'), null, 'a Greek passphrase')
  t.equal(await passwordWeakness('👩‍💻 writes code at night 🌙'), null, 'emoji with a zero-width joiner')
})

t.test('password policy: unpaired surrogates are refused (issue 15, finding 4)', async t => {
  const message = 'must be valid Unicode (it contains an unpaired surrogate)'
  t.equal(await passwordWeakness('correct horse \uD800 battery'), message, 'a lone high surrogate')
  t.equal(await passwordWeakness('correct horse \uDC00 battery'), message, 'a lone low surrogate')
  t.equal(await passwordWeakness('correct horse battery \uDC00\uD800'), message, 'a pair in the wrong order')
  t.equal(await passwordWeakness('correct horse battery \uD83D'), message, 'half an emoji at the end')
  t.equal(await passwordWeakness('correct horse battery 😀'), null, 'a whole pair is fine')
  t.equal(await asyncCode(() => assertPasswordAcceptable('correct horse \uD800 battery', 'body/password')), 'password_policy')
  t.equal(code(() => assertPasswordWellFormed('\uDFFFanything', 'body/password')), 'password_policy', 'even where no policy applies (login)')
  t.equal(code(() => assertPasswordWellFormed('anything 😀')), undefined)
  try {
    assertPasswordWellFormed('x\uD800', 'body/current_password')
  } catch (err) {
    t.match(err, { code: 'password_policy', message: /unpaired surrogate/, details: { errors: [{ path: '/body/current_password' }] } }, 'names the field')
  }
})

t.test('normalizePassword and samePassword', async t => {
  t.equal(normalizePassword('ｐａｓｓ ｗｏｒｄ'), 'pass word', 'NFKC: fullwidth to ASCII')
  t.equal(normalizePassword('cafe\u0301'), 'caf\u00E9', 'NFKC composes')
  t.equal(normalizePassword('\uFB01ne'), 'fine', 'ligatures are expanded')
  t.equal(normalizePassword('p\u0430ss'), 'p\u0430ss', 'homoglyphs are kept: they are only folded for the policy')
  t.equal(normalizePassword('pass\u200Bword'), 'pass\u200Bword', 'invisible characters are kept: they are only ignored for the policy')
  t.ok(samePassword('correct horse', 'ｃｏｒｒｅｃｔ horse'))
  t.ok(samePassword('correct horse', 'correct\u200B horse'), 'an invisible difference is no difference')
  t.notOk(samePassword('correct horse', 'Correct horse'))
})

t.test('user policies', async t => {
  const admin = { id: 'A', role: 'admin' as const }
  const manager = { id: 'M', role: 'manager' as const }
  const user = { id: 'U', role: 'user' as const }
  const target = { id: 'X', role: 'user' as const, is_active: true }

  t.equal(code(() => assertCanViewUser(user, 'X')), 'forbidden', 'a user may not view others')
  t.equal(code(() => assertCanViewUser(user, 'U')), undefined, 'a user may view itself')
  t.equal(code(() => assertCanViewUser(manager, 'X')), undefined)

  t.equal(code(() => assertCanUpdateUser(admin, target, { role: 'manager', is_active: false, name: 'n' })), undefined, 'admin: all fields')
  t.equal(code(() => assertCanUpdateUser(manager, target, { name: 'n' })), undefined, 'manager: name')
  t.equal(code(() => assertCanUpdateUser(manager, target, { role: 'admin' })), 'forbidden', 'manager: not role')
  t.equal(code(() => assertCanUpdateUser(manager, target, { is_active: false })), 'forbidden', 'manager: not is_active')
  t.equal(code(() => assertCanUpdateUser(user, { ...target, id: 'U' }, { name: 'n' })), 'forbidden', 'user: nothing, not even itself')
  t.equal(code(() => assertCanUpdateUser(admin, { id: 'A', role: 'admin', is_active: true }, { role: 'user' })), 'forbidden', 'nobody sets their own role')
  t.equal(code(() => assertCanUpdateUser(admin, { id: 'A', role: 'admin', is_active: true }, { role: 'admin', name: 'n' })), undefined, 'restating the own role is harmless')
  t.equal(code(() => assertCanUpdateUser(admin, { id: 'A', role: 'admin', is_active: true }, { is_active: false })), 'forbidden', 'nobody deactivates themselves')
  t.equal(code(() => assertCanDeactivateUser(admin, 'A')), 'forbidden')
  t.equal(code(() => assertCanDeactivateUser(manager, 'X')), 'forbidden')
  t.equal(code(() => assertCanDeactivateUser(admin, 'X')), undefined)

  t.ok(removesActiveAdmin({ role: 'admin', is_active: true }, { role: 'manager', is_active: true }))
  t.ok(removesActiveAdmin({ role: 'admin', is_active: true }, { role: 'admin', is_active: false }))
  t.notOk(removesActiveAdmin({ role: 'admin', is_active: false }, { role: 'user', is_active: false }))
  t.ok(addsActiveAdmin({ role: 'user', is_active: true }, { role: 'admin', is_active: true }))
  t.ok(addsActiveAdmin({ role: 'admin', is_active: false }, { role: 'admin', is_active: true }))
  t.notOk(addsActiveAdmin({ role: 'admin', is_active: true }, { role: 'admin', is_active: true }))
  t.equal(normalizeEmail('  Grace.Hopper@Example.COM '), 'grace.hopper@example.com')

  const u: User = {
    id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV',
    email: 'a@example.com',
    name: 'A',
    role: 'user',
    is_active: true,
    must_change_password: false,
    password_hash: '$argon2id$secret',
    session_version: 3,
    version: 2,
    created_at: '2026-11-25T12:00:00.000Z',
    updated_at: '2026-11-25T12:00:00.000Z',
    last_login_at: null
  }
  const profile = toProfile(u)
  t.notOk('password_hash' in profile, 'the profile never carries the hash')
  t.notOk('session_version' in profile)
  t.same(validateComponent('UserProfile', profile), [], 'the profile matches the spec')
})

t.test('ETags and If-Match', async t => {
  t.equal(etagOf(7), '"v7"')
  t.equal(versionFromIfMatch(undefined), undefined)
  t.equal(versionFromIfMatch('*'), undefined)
  t.equal(versionFromIfMatch('"v7"'), 7)
  t.equal(code(() => versionFromIfMatch('W/"v7"')), 'precondition_failed', 'weak ETags never match If-Match')
  t.equal(code(() => versionFromIfMatch('"abc"')), 'precondition_failed')
  t.equal(code(() => versionFromIfMatch('"v1", "v2"')), 'precondition_failed')
})

t.test('cursors are opaque, signed and bound to their query', async t => {
  const codec = createCursorCodec('secret-one-that-is-long-enough-000000')
  const other = createCursorCodec('secret-two-that-is-long-enough-000000')
  const key = { id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', entity: 'user' }
  const cursor = codec.encode(key, { role: 'admin' })
  t.match(cursor, /^[A-Za-z0-9_-]+$/, 'URL-safe')
  t.same(codec.decode(cursor, { role: 'admin' }), key, 'round trip')
  t.same(codec.decode(cursor, { role: 'admin', search: undefined }), key, 'undefined filters do not matter')
  t.equal(code(() => codec.decode(cursor, { role: 'user' })), 'invalid_cursor', 'another query')
  t.equal(code(() => other.decode(cursor, { role: 'admin' })), 'invalid_cursor', 'another key')
  t.equal(code(() => codec.decode(cursor.slice(0, -1) + (cursor.endsWith('A') ? 'B' : 'A'), { role: 'admin' })), 'invalid_cursor', 'edited signature')
  t.equal(code(() => codec.decode('x' + cursor, { role: 'admin' })), 'invalid_cursor', 'edited payload')
  t.equal(code(() => codec.decode('abc', {})), 'invalid_cursor', 'too short')
  const forged = Buffer.from('not json').toString('base64url')
  t.equal(code(() => codec.decode(forged + 'A'.repeat(22), {})), 'invalid_cursor')

  // readPage fills short (filtered) rounds and stops at the bound.
  const data = Array.from({ length: 50 }, (_, i) => i)
  const calls: number[] = []
  const round = async (limit: number, start: Record<string, unknown> | undefined) => {
    calls.push(limit)
    const from = start ? Number(start.i) : 0
    const slice = data.slice(from, from + limit)
    const next = from + limit < data.length ? { i: from + limit } : undefined
    return { items: slice.filter(n => n % 2 === 0), lastKey: next }
  }
  const page = await readPage(codec, {}, 10, undefined, round)
  t.equal(page.items.length, 10, 'filled from several rounds')
  t.ok(page.next_cursor)
  const all: number[] = [...page.items]
  let cursorNext = page.next_cursor
  while (cursorNext) {
    const p = await readPage(codec, {}, 10, cursorNext, round)
    all.push(...p.items)
    cursorNext = p.next_cursor
  }
  t.same(all, data.filter(n => n % 2 === 0), 'a walk returns every item once')
  let rounds = 0
  const sparse = await readPage(codec, {}, 10, undefined, async (limit, start) => {
    rounds++
    return { items: [], lastKey: { i: Number(start?.i ?? 0) + limit } }
  }, 3)
  t.equal(rounds, 3, 'bounded rounds')
  t.same(sparse.items, [], 'a selective filter returns a short page…')
  t.ok(sparse.next_cursor, '…with a cursor, instead of reading on without bound')
})

t.test('configuration', async t => {
  const c = loadConfig({})
  t.equal(c.port, 3000)
  t.equal(c.host, '127.0.0.1')
  t.equal(c.tablePrefix, 'monitoring-')
  t.equal(c.dynamodbEndpoint, undefined, 'embedded by default')
  t.same(c.corsOrigins, [])
  t.equal(c.argon2.memoryCost, 19456)
  t.equal(c.argon2.timeCost, 2)
  t.equal(c.argon2.parallelism, 1)
  t.equal(c.bodyLimit, 102400)
  t.same(loadConfig({ CORS_ORIGINS: 'https://a.example, https://b.example' }).corsOrigins, ['https://a.example', 'https://b.example'])
  t.equal(c.trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: '1' }).trustProxy, 1, 'a hop count')
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8' }).trustProxy, '10.0.0.0/8', 'proxy addresses')
  t.equal(loadConfig({ PORT: '8080' }).port, 8080)
  t.throws(() => loadConfig({ PORT: 'eighty' }), { name: 'ConfigError', message: /PORT/ })
  t.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_SECRET is required/)
  t.throws(() => loadConfig({ JWT_SECRET: 'short' }), { name: 'ConfigError', message: /JWT_SECRET/ })
  try {
    loadConfig({ JWT_SECRET: 'too-short-secret-value' })
  } catch (err) {
    t.notMatch(String(err), /too-short-secret-value/, 'errors never echo values (they may be secrets)')
  }
  t.equal(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }).jwtSecret, 'x'.repeat(40))
  t.same(c.authCache, { ttlMs: 1000, settleMs: 0 }, 'embedded database: one process, nothing to wait for')
  t.same(loadConfig({ DYNAMODB_ENDPOINT: 'aws' }).authCache, { ttlMs: 1000, settleMs: 1000 }, 'shared database: revocations wait out the cache')
  t.same(loadConfig({ DYNAMODB_ENDPOINT: 'aws', AUTH_CACHE_MS: '0' }).authCache, { ttlMs: 0, settleMs: 0 }, 'cache off')
  t.throws(() => loadConfig({ AUTH_CACHE_MS: '60000' }), { name: 'ConfigError', message: /AUTH_CACHE_MS/ })
  t.equal(c.publicBaseUrl, undefined, 'no public URL by default (the connection test then does not verify endpoints)')
  t.equal(loadConfig({ PUBLIC_BASE_URL: 'https://monitoring.example.com/' }).publicBaseUrl, 'https://monitoring.example.com', 'without the trailing slash')
  t.equal(loadConfig({ PUBLIC_BASE_URL: 'https://example.com/monitoring' }).publicBaseUrl, 'https://example.com/monitoring', 'a path prefix')
  for (const bad of ['monitoring.example.com', 'ftp://example.com', 'https://example.com/x?y=1', 'https:// example.com']) {
    t.throws(() => loadConfig({ PUBLIC_BASE_URL: bad }), { name: 'ConfigError', message: /PUBLIC_BASE_URL/ }, `refused: ${bad}`)
  }
  t.same(c.onboarding, { serviceAccountId: undefined, memberRoleName: DEFAULT_MEMBER_ROLE_NAME, templateUrl: undefined }, 'onboarding: nothing but the default role name')
  t.same(loadConfig({ SERVICE_AWS_ACCOUNT_ID: '111111111111', MEMBER_ROLE_NAME: 'Ops.ReadOnly', MEMBER_TEMPLATE_URL: 'https://b.s3.amazonaws.com/m.json' }).onboarding,
    { serviceAccountId: '111111111111', memberRoleName: 'Ops.ReadOnly', templateUrl: 'https://b.s3.amazonaws.com/m.json' })
  for (const [name, bad] of [['SERVICE_AWS_ACCOUNT_ID', '11111111111'], ['MEMBER_ROLE_NAME', 'has space'], ['MEMBER_TEMPLATE_URL', 'http://b.s3.amazonaws.com/m.json'], ['MEMBER_TEMPLATE_URL', 'https://b.s3.amazonaws.com']] as const) {
    t.throws(() => loadConfig({ [name]: bad }), { name: 'ConfigError', message: new RegExp(name) }, `refused: ${name}=${bad}`)
  }
})

t.test('onboarding: quick-create links, shell words, the template\'s own constraints', async t => {
  const url = new URL(quickCreateUrl({ partition: 'aws', region: 'eu-west-1', templateUrl: 'https://b.s3.amazonaws.com/a b&c.json', stackName: 's', parameters: [['ExternalId', 'a=b&c/d+e']] }))
  t.equal(url.host, 'eu-west-1.console.aws.amazon.com')
  const q = new URLSearchParams(url.hash.split('?')[1])
  t.same(Object.fromEntries(q), { templateURL: 'https://b.s3.amazonaws.com/a b&c.json', stackName: 's', param_ExternalId: 'a=b&c/d+e' }, 'reserved characters survive')
  t.equal(new URL(quickCreateUrl({ partition: 'aws-cn', region: 'cn-north-1', templateUrl: 'https://x/t', stackName: 's', parameters: [] })).host, 'cn-north-1.console.amazonaws.cn', 'China')
  t.equal(new URL(quickCreateUrl({ partition: 'aws-us-gov', region: 'us-gov-west-1', templateUrl: 'https://x/t', stackName: 's', parameters: [] })).host, 'console.amazonaws-us-gov.com', 'GovCloud')
  t.equal(shellWord('ExternalId=ops-7f3a'), 'ExternalId=ops-7f3a')
  t.equal(shellWord("ApiKey=<it's>"), "'ApiKey=<it'\\''s>'", 'quoted, with a quote inside')
  t.ok(new RegExp(SERVICE_URL_PATTERN).test('https://monitoring.example.com/base'))
  t.notOk(new RegExp(SERVICE_URL_PATTERN).test('https://monitoring.example.com/'), 'no trailing slash')

  const template: CfnTemplate = {
    Parameters: {
      ServiceAccountId: { Type: 'String', AllowedPattern: '^[0-9]{12}$' },
      ExternalId: { Type: 'String', MinLength: 2, MaxLength: 5 },
      CreateRole: { Type: 'String', Default: 'true', AllowedValues: ['true', 'false'] },
      ApiKey: { Type: 'String', NoEcho: true }
    },
    Resources: {}
  }
  const account = { account_id: '123456789012', role_arn: 'arn:aws-cn:iam::123456789012:role/CloudMonitoringReadOnly', external_id: 'too-long-for-it', regions: ['cn-north-1'] }
  const o = buildOnboarding(account, { serviceAccountId: '111111111111', publicBaseUrl: undefined, memberRoleName: DEFAULT_MEMBER_ROLE_NAME, templateUrl: 'https://x/t', region: 'us-east-1' }, template)
  t.same(o.missing.map(m => m.parameter), ['ExternalId'], 'a value the template would refuse is missing')
  const params = o.template.Parameters as Record<string, Record<string, unknown>>
  t.equal(params.ServiceAccountId!.Default, '111111111111')
  t.notOk('Default' in params.ExternalId!)
  t.notOk('Default' in template.Parameters.ServiceAccountId!, 'the template passed in is not changed')
  t.equal(o.role_arn, 'arn:aws-cn:iam::123456789012:role/CloudMonitoringReadOnly', 'the partition of the registered role')
  t.equal(o.role_arn_matches, true)
  t.same(o.regions, [{ region: 'cn-north-1', create_role: true, quick_create_url: null }])
})

t.test('member wiring: the ingestion URL and its comparison with an API destination\'s endpoint', async t => {
  t.equal(ingestionUrl('https://monitoring.example.com'), 'https://monitoring.example.com/api/events/ingest')
  t.equal(ingestionUrl('https://monitoring.example.com/'), 'https://monitoring.example.com/api/events/ingest')
  const expected = 'https://monitoring.example.com/api/events/ingest'
  t.ok(sameEndpoint(expected, expected))
  t.ok(sameEndpoint('HTTPS://Monitoring.Example.COM/api/events/ingest', expected), 'scheme and host: case-insensitive')
  t.ok(sameEndpoint('https://monitoring.example.com:443/api/events/ingest/', expected), 'default port and one trailing slash')
  t.notOk(sameEndpoint('https://monitoring.example.com/API/events/ingest', expected), 'the path: exact')
  t.notOk(sameEndpoint('http://monitoring.example.com/api/events/ingest', expected), 'the scheme')
  t.notOk(sameEndpoint('https://old.example.com/api/events/ingest', expected), 'the host')
  t.notOk(sameEndpoint('https://monitoring.example.com/api/events/ingest?x=1', expected), 'a query')
  t.notOk(sameEndpoint('', expected), 'no endpoint')
  t.same(MEMBER_WIRING, { ruleName: 'cloud-monitoring-events', apiDestinationName: 'cloud-monitoring-ingest', connectionName: 'cloud-monitoring-ingest-key' }, 'the names deployed stacks carry: a change needs a migration of every member stack')
  for (const name of Object.values(MEMBER_WIRING)) t.match(name, /^[.\-_A-Za-z0-9]{1,64}$/, `${name}: a valid EventBridge name`)
})

t.test('the login gate: bounded concurrency, arrival order, a bounded queue', async t => {
  const gate = createGate(2, 3)
  const started: number[] = []
  let running = 0
  let peak = 0
  const releases: Array<() => void> = []
  const job = (n: number) => () => new Promise<number>(resolve => {
    started.push(n)
    peak = Math.max(peak, ++running)
    releases.push(() => { running--; resolve(n) })
  })
  const runs = [1, 2, 3, 4, 5].map(n => gate.run(job(n)))
  await new Promise(resolve => setImmediate(resolve))
  t.same([gate.active, gate.waiting], [2, 3])
  await t.rejects(gate.run(job(6)), { code: 'rate_limited' }, 'a full queue is a 429, not an unbounded backlog')
  const failing = createGate(1, 1)
  await t.rejects(failing.run(async () => { throw new Error('boom') }), /boom/)
  t.equal(await failing.run(async () => 'next'), 'next', 'a failed call frees its slot')
  while (releases.length || started.length < 5) {
    releases.shift()?.()
    await new Promise(resolve => setImmediate(resolve))
  }
  t.same(await Promise.all(runs), [1, 2, 3, 4, 5])
  t.same(started, [1, 2, 3, 4, 5], 'first come, first served')
  t.equal(peak, 2, 'never more than the limit at once')
  t.same([gate.active, gate.waiting], [0, 0])
})

t.test('ids: monotonic for items, unpredictable for refresh families', async t => {
  const monotonic = Array.from({ length: 50 }, () => newId())
  t.same([...monotonic].sort(), monotonic, 'item ids sort in creation order')
  const random = Array.from({ length: 50 }, () => randomId())
  t.ok(random.every(id => /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)), 'ULIDs')
  // Consecutive monotonic ids share all but the last characters; random ones share at most chance.
  const shared = (a: string, b: string) => { let i = 10; while (i < 26 && a[i] === b[i]) i++; return i - 10 }
  t.ok(random.slice(1).every((id, i) => shared(random[i]!, id) < 8), 'no two family ids in a row share a random prefix')
  t.ok(monotonic.slice(1).some((id, i) => shared(monotonic[i]!, id) >= 14), 'whereas item ids do (same millisecond)')
})

t.test('the per-process TTL cache', async t => {
  let clock = 0
  let loads = 0
  const cache = createTtlCache<string>({ ttlMs: 1000, max: 3, now: () => clock })
  const load = (value: string) => async () => { loads++; return value }
  const [a, b] = await Promise.all([cache.get('k', load('one')), cache.get('k', load('two'))])
  t.same([a, b, loads], ['one', 'one', 1], 'concurrent misses share one load')
  clock = 999
  t.equal(await cache.get('k', load('three')), 'one', 'fresh for ttlMs')
  clock = 1000
  t.equal(await cache.get('k', load('four')), 'four', 'then loaded again')
  cache.evict('k')
  t.equal(await cache.get('k', load('five')), 'five', 'evict: the next read loads')
  cache.set('k', 'written')
  t.equal(await cache.get('k', load('six')), 'written', 'set: a write this process made is seen at once')

  let fail = true
  const flaky = async () => { if (fail) throw new Error('database down'); return 'up' }
  await t.rejects(cache.get('f', flaky), /database down/)
  fail = false
  t.equal(await cache.get('f', flaky), 'up', 'failures are not kept')

  for (const k of ['x', 'y', 'z']) await cache.get(k, load(k))
  t.equal(cache.size, 3, 'bounded: the oldest entries go first')
  loads = 0
  await cache.get('k', load('again'))
  t.equal(loads, 1, 'the oldest entry was dropped')

  let started = 0
  const off = createTtlCache<number>({ ttlMs: 0, max: 10 })
  await off.get('k', async () => ++started)
  await off.get('k', async () => ++started)
  t.equal(started, 2, 'ttlMs 0: no caching')
})

t.test('layering: the dependency rules of the architecture hold', async t => {
  const { readdir, readFile } = await import('node:fs/promises')
  const path = await import('node:path')
  const root = new URL('../src/', import.meta.url).pathname
  const files: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else if (p.endsWith('.ts')) files.push(p)
    }
  }
  await walk(root)
  t.ok(files.length > 20, `${files.length} source files`)
  for (const file of files) {
    const rel = path.relative(root, file)
    const source = await readFile(file, 'utf8')
    const imports = [...source.matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map(m => m[1] as string)
    const runtime = [...source.matchAll(/^import (?!type )[^'"]*['"]([^'"]+)['"]/gm)].map(m => m[1] as string)
    if (rel.startsWith('domain/')) {
      t.same(runtime.filter(i => /fastify|dynamoose|@aws-sdk|argon2|\.\.\/(plugins|modules|db)\//.test(i)), [], `${rel}: domain imports no framework, database or outer layer`)
    }
    if (imports.includes('dynamoose')) {
      // One dialect: Dynamoose defines the models (tables, keys, indexes), through the entity
      // definitions of db/entity.ts that every *.model.ts uses; all I/O goes through the toolkit.
      t.ok(rel === 'db/entity.ts' || rel === 'plugins/dynamo.ts', `${rel}: only the entity definitions and the client set-up import dynamoose`)
    }
    if (!rel.startsWith('db/')) {
      // Expressions are values of db/expressions.ts: no expression string written by hand outside db/.
      const handWritten = source.match(/\b(?:ConditionExpression|UpdateExpression|KeyConditionExpression|FilterExpression)\b|attribute_(?:not_)?exists\(|['`](?:SET|ADD|REMOVE) #/g) ?? []
      t.same(handWritten, [], `${rel}: no hand-written expression outside src/db`)
    }
    if (/^(plugins|db|lib)\//.test(rel)) {
      // The shared ring knows no module (not even its types): modules plug into it, app.ts and
      // data.ts (the composition root) wire them.
      t.same(imports.filter(i => /\/modules\//.test(i) || /^\.\.\/(app|data|server|lambda)\.js$/.test(i)), [], `${rel}: the shared ring imports no module and not the composition root`)
    }
    const mod = /^modules\/([^/]+)\//.exec(rel)?.[1]
    if (mod) {
      const foreign = imports.filter(i => i.startsWith('../') && /modules\/|^\.\.\/[a-z-]+\//.test(i) && !i.startsWith('../../')).filter(i => !i.startsWith(`../${mod}/`))
      t.same(foreign, [], `${rel}: modules never import each other`)
    }
  }
})
