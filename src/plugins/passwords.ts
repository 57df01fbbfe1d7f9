import fp from 'fastify-plugin'
import { availableParallelism } from 'node:os'
import argon2 from 'argon2'
import { assertPasswordWellFormed, normalizePassword } from '../domain/password-policy.js'
import { createGate } from '../lib/gate.js'

/** The outcome of a password check: whether it matched, and whether the stored hash should be replaced. */
export interface PasswordCheck {
  ok: boolean
  /** The hash has outdated parameters, or was made from a password that was not NFKC-normalised. */
  rehash: boolean
}

/**
 * Every method takes the password as typed: it is NFKC-normalised here (NIST SP 800-63B
 * §5.1.1.2), so every caller (login, password change, user creation, reset, scripts) hashes
 * and verifies the same form. A password with an unpaired surrogate is `400 password_policy`.
 */
export interface PasswordHasher {
  hash: (password: string) => Promise<string>
  /**
   * Constant work whatever the account and the outcome: pass `null` to verify against a dummy
   * hash. The argon2 work depends only on the password typed (see `check` below).
   */
  check: (hash: string | null, password: string) => Promise<PasswordCheck>
  /** `check(…).ok`. */
  verify: (hash: string | null, password: string) => Promise<boolean>
  needsRehash: (hash: string) => boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    passwords: PasswordHasher
  }
}

export interface PasswordOptions { memoryCost: number, timeCost: number, parallelism: number }

/**
 * argon2id with explicit parameters (OWASP: m=19 MiB, t=2, p=1 by default). Hashing runs on
 * libuv's thread pool, so logins do not block the event loop; at most one hash per core but one
 * runs at a time (src/lib/gate.ts, at least one), so a login flood cannot crowd out the rest of
 * the API: a core stays for the event loop and the database client.
 */
export default fp<PasswordOptions>(async (app, opts) => {
  const params = { type: argon2.argon2id, memoryCost: opts.memoryCost, timeCost: opts.timeCost, parallelism: opts.parallelism }
  // Made while the rest of the app starts (a hash is ~25 ms on the pool), awaited by the checks.
  const dummy = argon2.hash('dummy password for unknown accounts', params)
  dummy.catch(() => {}) // a failure surfaces in the check that awaits it
  // One hash per core but one, and never the whole libuv pool (the stand-in's LevelDB, DNS and
  // file reads use it too). On 2 cores (bench, two alternating pairs): health p99 in a login
  // flood 28.6 and 37.9 ms with one slot, 87.1 and 73.9 ms with two; logins 30.4 and 26.8/s
  // against 32.0 and 32.9/s (scripts/bench/notes.md, section 3).
  const slots = Math.max(1, Math.min(availableParallelism() - 1, (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1))
  const gate = createGate(slots, 256 * slots)
  // A malformed stored hash is a failed check.
  const matches = (hash: string, password: string): Promise<boolean> => argon2.verify(hash, password).catch(() => false)

  const check = async (hash: string | null, password: string): Promise<PasswordCheck> => {
    assertPasswordWellFormed(password)
    const normal = normalizePassword(password)
    // The gate's 429 (queue full) goes to the caller.
    return gate.run(async () => {
      const against = hash ?? await dummy
      const ok = await matches(against, normal)
      // Hashes made before passwords were normalised are of the password as typed. That form
      // is checked whenever it differs, even after a match, so that the work done depends on
      // the input only: never on whether the account exists, is active, or the password is right.
      const legacy = normal !== password && await matches(against, password)
      if (hash === null || !(ok || legacy)) return { ok: false, rehash: false }
      return { ok: true, rehash: !ok || argon2.needsRehash(hash, params) }
    })
  }

  app.decorate('passwords', {
    hash: async (password: string) => {
      assertPasswordWellFormed(password)
      const normal = normalizePassword(password)
      return gate.run(() => argon2.hash(normal, params))
    },
    check,
    verify: async (hash: string | null, password: string) => (await check(hash, password)).ok,
    needsRehash: (hash: string) => argon2.needsRehash(hash, params)
  })
}, { name: 'passwords' })
