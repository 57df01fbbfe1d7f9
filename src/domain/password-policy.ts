import { DomainError } from './errors.js'

/**
 * Password policy after NIST SP 800-63B §5.1.1.2: length 12–128, no composition rules, and a
 * block-list of common passwords (and trivial variations of them).
 *
 * Unicode, as §5.1.1.2 asks: a password is hashed and verified in its NFKC form
 * (`normalizePassword`, applied by src/plugins/passwords.ts for every caller), so a fullwidth
 * or decomposed spelling of a password is that password. The policy looks through further
 * disguises that must not change what is hashed: invisible characters are ignored, and
 * Cyrillic and Greek letters that look Latin are read as Latin, when comparing against the
 * common passwords and the user's e-mail and name. A password with an unpaired UTF-16
 * surrogate is refused everywhere (it is not text: UTF-8 turns every lone surrogate into the
 * same U+FFFD, so different ones would verify against each other).
 */
export const PASSWORD_MIN_LENGTH = 12
export const PASSWORD_MAX_LENGTH = 128

/** Code units, no `u` flag: a lone surrogate is one that is not half of a pair. */
const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/**
 * Characters that show nothing: format controls (zero-width space and joiners, bidi marks,
 * embeddings, overrides and isolates, soft hyphen, word joiner, byte-order mark, tags) and
 * the other default-ignorable code points (variation selectors, Hangul fillers, …).
 */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu

/** [lookalike, Latin] for each position of two equally long strings. */
const pairs = (lookalike: string, latin: string): Array<[string, string]> => [...lookalike].map((c, i) => [c, latin[i] ?? c])

/**
 * Common confusables (after Unicode's confusables.txt): Cyrillic and Greek letters, and a few
 * Latin phonetic ones, that are drawn like a Latin letter. Used for the policy only.
 */
const CONFUSABLES = new Map<string, string>([
  // Cyrillic capitals and small letters
  ...pairs('АВЕЅІЈКМНОРСТУҮХԚԜӀԀꙄ', 'ABESIJKMHOPCTYYXQWIDS'),
  ...pairs('авеѕіјкмнорстуүхԛԝӏԁһѵ', 'abesijkmhopctyyxqwldhv'),
  // Greek capitals and small letters
  ...pairs('ΑΒΕΖΗΙΚΜΝΟΡΤΥΧϹͿ', 'ABEZHIKMNOPTYXCJ'),
  ...pairs('αικνορτυχγϲϳ', 'aikvoptuxycj'),
  // Latin letters that look like other Latin letters
  ...pairs('ıɑɩɡ', 'iaig')
])
const CONFUSABLE = new RegExp(`[${[...CONFUSABLES.keys()].join('')}]`, 'gu')

/** The form that is hashed and verified (NIST SP 800-63B: NFKC). */
export const normalizePassword = (password: string): string => password.normalize('NFKC')

/** What a reader sees: NFKC without invisible characters. */
const visible = (text: string): string => normalizePassword(normalizePassword(text).replace(INVISIBLE, ''))

/** The form compared against the common passwords, the e-mail and the name. */
const policyForm = (text: string): string => visible(text).replace(CONFUSABLE, c => CONFUSABLES.get(c) ?? c).toLowerCase()

/** Whether two passwords are the same to a reader (e.g. a "new" password that is the old one). */
export const samePassword = (a: string, b: string): boolean => visible(a) === visible(b)

let common: Promise<Set<string>> | undefined

/**
 * The common passwords (zxcvbn's list, in the policy's form), loaded at the first check: the
 * list's module, its decompression and this set are ~150 ms that a start does not need.
 */
function commonPasswords (): Promise<Set<string>> {
  common ??= import('@zxcvbn-ts/language-common').then(
    ({ dictionary }) => new Set(dictionary['passwords-common'].map(policyForm)),
    (err: unknown) => {
      common = undefined
      throw err
    })
  return common
}

const MALFORMED = 'must be valid Unicode (it contains an unpaired surrogate)'

/** Why a password is refused, or null when it is acceptable. */
export async function passwordWeakness (password: string, context: { email?: string, name?: string } = {}): Promise<string | null> {
  if (UNPAIRED_SURROGATE.test(password)) return MALFORMED
  const length = [...visible(password)].length
  if (length < PASSWORD_MIN_LENGTH) return `must be at least ${PASSWORD_MIN_LENGTH} characters`
  if (length > PASSWORD_MAX_LENGTH) return `must be at most ${PASSWORD_MAX_LENGTH} characters`
  const lower = policyForm(password)
  if (new Set(lower).size < 4) return 'is too repetitive'
  // A common password, the same repeated, or with digits and symbols appended, is still common.
  const stem = lower.replace(/[\d\W_]+$/u, '')
  const commonList = await commonPasswords()
  if (commonList.has(lower) || (stem.length >= 4 && commonList.has(stem))) return 'is too common'
  for (let size = 1; size <= lower.length / 2; size++) {
    if (lower.length % size === 0 && lower.slice(0, size).repeat(lower.length / size) === lower) {
      if (size < 6 || commonList.has(lower.slice(0, size))) return 'is too repetitive'
    }
  }
  const email = context.email === undefined ? undefined : policyForm(context.email)
  const local = email?.split('@')[0]
  if ((email && lower.includes(email)) || (local && local.length >= 4 && lower.includes(local))) return 'must not contain the e-mail address'
  const name = context.name === undefined ? undefined : policyForm(context.name).trim()
  if (name && name.length >= 4 && lower.includes(name)) return 'must not contain the user name'
  return null
}

const policyError = (weakness: string, field?: string): DomainError =>
  new DomainError('password_policy', `The password ${weakness}.`, field ? { errors: [{ path: `/${field}`, message: `password ${weakness}` }] } : {})

export async function assertPasswordAcceptable (password: string, field: string, context: { email?: string, name?: string } = {}): Promise<void> {
  const weakness = await passwordWeakness(password, context)
  if (weakness) throw policyError(weakness, field)
}

/**
 * Wherever a password is accepted, even where no policy applies (login, the current password):
 * an unpaired surrogate is `400 password_policy`.
 */
export function assertPasswordWellFormed (password: string, field?: string): void {
  if (UNPAIRED_SURROGATE.test(password)) throw policyError(MALFORMED, field)
}
