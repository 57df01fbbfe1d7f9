import fp from 'fastify-plugin'
import argon2 from 'argon2'

export interface PasswordHasher {
  hash: (password: string) => Promise<string>
  /** Constant work whether or not a user exists: pass `null` to verify against a dummy hash. */
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
 * libuv's thread pool, so logins do not block the event loop.
 */
export default fp<PasswordOptions>(async (app, opts) => {
  const params = { type: argon2.argon2id, memoryCost: opts.memoryCost, timeCost: opts.timeCost, parallelism: opts.parallelism }
  const dummy = await argon2.hash('dummy password for unknown accounts', params)
  app.decorate('passwords', {
    hash: (password: string) => argon2.hash(password, params),
    async verify (hash: string | null, password: string) {
      try {
        const ok = await argon2.verify(hash ?? dummy, password)
        return hash !== null && ok
      } catch {
        return false
      }
    },
    needsRehash: (hash: string) => argon2.needsRehash(hash, params)
  })
}, { name: 'passwords' })
