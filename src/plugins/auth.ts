import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import { newId } from '../lib/ids.js'
import type { FastifyRequest } from 'fastify'
import { DomainError } from '../domain/errors.js'
import type { Actor, User } from '../domain/users.js'

/** Claims of an access token (refresh tokens are opaque, never JWTs). */
export interface AccessClaims {
  sub: string
  role: User['role']
  sv: number
  jti: string
  token_use: 'access'
  iat: number
  exp: number
  iss: string
  aud: string
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: Omit<AccessClaims, 'iat' | 'exp' | 'iss' | 'aud' | 'jti'> & { jti?: string }
    user: AccessClaims
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Verifies the bearer token and loads the caller; throws a 401 domain error otherwise. */
    authenticate: (request: FastifyRequest) => Promise<void>
    issueAccessToken: (user: Pick<User, 'id' | 'role' | 'session_version'>) => { token: string, expiresIn: number, jti: string }
  }
  interface FastifyRequest {
    actor: Actor | null
    currentUser: User | null
  }
}

export interface AuthPluginOptions {
  secret: string
  issuer: string
  audience: string
  accessTtlSeconds: number
  /** The denylist of logged-out access tokens (the auth module's repository). */
  revocations: { isTokenDenied: (jti: string) => Promise<boolean> }
  /** The caller's current record (the users module's repository, cached per process). */
  callers: { getCaller: (id: string) => Promise<User | null> }
}

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i

/**
 * Access tokens: HS256 only (pinned), `iss`, `aud`, `exp`, `sub`, `jti` required, read from
 * the Authorization header only. Each request also checks the denylist (logout) and the
 * current user record, so deactivation, password changes and role changes apply at once.
 * Both lookups are cached per process for AUTH_CACHE_MS; the writes that revoke update this
 * process's cache and, when other instances may share the database, wait that long before
 * they answer (src/modules/users/users.repository.ts `getCaller`).
 */
export default fp<AuthPluginOptions>(async (app, opts) => {
  await app.register(fastifyJwt, {
    secret: opts.secret,
    // @fastify/jwt reads plain numbers as seconds.
    sign: { algorithm: 'HS256', iss: opts.issuer, aud: opts.audience, expiresIn: opts.accessTtlSeconds },
    verify: {
      algorithms: ['HS256'],
      allowedIss: opts.issuer,
      allowedAud: opts.audience,
      requiredClaims: ['iss', 'aud', 'exp', 'iat', 'sub', 'jti'],
      maxAge: opts.accessTtlSeconds,
      // A token verified once is not verified again until it expires (fast-jwt's cache, keyed by
      // a hash of the token; failures are not cached): decoding and checking it were a tenth of
      // an authenticated request's CPU (docs/performance.md).
      cache: 10_000
    },
    decode: { complete: false }
  })

  app.decorateRequest('actor', null)
  app.decorateRequest('currentUser', null)

  app.decorate('issueAccessToken', (user: Pick<User, 'id' | 'role' | 'session_version'>) => {
    const jti = newId()
    const token = app.jwt.sign({ sub: user.id, role: user.role, sv: user.session_version, token_use: 'access' }, { jti })
    return { token, expiresIn: opts.accessTtlSeconds, jti }
  })

  app.decorate('authenticate', async (request: FastifyRequest) => {
    const header = request.headers.authorization
    if (!header) throw new DomainError('token_invalid', 'Authentication required: send `Authorization: Bearer <access token>`.')
    const match = BEARER.exec(header)
    if (!match?.[1]) throw new DomainError('token_invalid', 'The Authorization header is not a bearer token.')
    let claims: AccessClaims
    try {
      claims = app.jwt.verify<AccessClaims>(match[1])
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      if (code.includes('EXPIRED')) throw new DomainError('token_expired', 'The access token has expired; refresh it.')
      throw new DomainError('token_invalid', 'The access token is not valid.')
    }
    if (claims.token_use !== 'access' || typeof claims.sv !== 'number') throw new DomainError('token_invalid', 'The access token is not valid.')
    const [denied, user] = await Promise.all([opts.revocations.isTokenDenied(claims.jti), opts.callers.getCaller(claims.sub)])
    if (denied) throw new DomainError('token_revoked', 'The access token has been revoked.')
    if (!user || !user.is_active || user.session_version !== claims.sv) throw new DomainError('token_revoked', 'The session is no longer valid; log in again.')
    request.user = claims
    request.actor = { id: user.id, role: user.role }
    request.currentUser = user
    // pino's request logger takes the binding in place (cheaper than a child per request).
    const log = request.log as typeof request.log & { setBindings?: (bindings: Record<string, unknown>) => void }
    if (log.setBindings) log.setBindings({ user_id: user.id })
    else request.log = request.log.child({ user_id: user.id })
  })
}, { name: 'auth', dependencies: ['dynamo', 'errors'] })
