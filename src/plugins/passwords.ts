import fp from 'fastify-plugin'
import { availableParallelism } from 'node:os'
import argon2 from 'argon2'
import { createGate } from '../lib/gate.js'

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
 * libuv's thread pool, so logins do not block the event loop; at most one hash per core runs
 * at a time (src/lib/gate.ts), so a login flood cannot crowd out the rest of the API.
 */
export default fp<PasswordOptions>(async (app, opts) => {
  const params = { type: argon2.argon2id, memoryCost: opts.memoryCost, timeCost: opts.timeCost, parallelism: opts.parallelism }
  const dummy = await argon2.hash('dummy password for unknown accounts', params)
  // One hash per core, and never the whole libuv pool (the stand-in's LevelDB, DNS and file
  // reads use it too).
  const slots = Math.max(1, Math.min(availableParallelism(), (Number(process.env.UV_THREADPOOL_SIZE) || 4) - 1))
  const gate = createGate(slots, 256 * slots)
  app.decorate('passwords', {
    hash: (password: string) => gate.run(() => argon2.hash(password, params)),
    // The gate's 429 (queue full) goes to the caller; a malformed stored hash is a failed check.
    verify: (hash: string | null, password: string) => gate.run(async () => {
      try {
        const ok = await argon2.verify(hash ?? dummy, password)
        return hash !== null && ok
      } catch {
        return false
      }
    }),
    needsRehash: (hash: string) => argon2.needsRehash(hash, params)
  })
}, { name: 'passwords' })
