/**
 * @cloud-monitoring/api-client: a typed client of the Cloud Monitoring Console API.
 *
 * `createApiClient()` gives the openapi-fetch client over the spec's `paths` (GET, POST, PUT,
 * PATCH, DELETE, HEAD), which signs in lazily and refreshes on 401, waits out `Retry-After`,
 * plus the helpers partners otherwise write themselves: `paginate`, `updateWithETag`/`updateTask`,
 * `signIn`/`signOut`, and `ApiError` for problem details.
 */
import createClient, { type Client } from 'openapi-fetch'
import type { components, paths } from './api-types.js'
import { ApiError, type ResultLike } from './errors.js'
import { withRetryAfter, withTimeout, type FetchLike, type RetryOptions } from './retry.js'

export type { components, operations, paths } from './api-types.js'
export { ApiError, isApiError, parseRetryAfter, unwrap, type Problem, type ProblemCode, type ResultLike } from './errors.js'
export { withRetryAfter, withTimeout, type FetchLike, type RetryCallOptions, type RetryOptions } from './retry.js'

/** Version of this package. */
export const CLIENT_VERSION = '1.0.0'
/** `info.version` of the API specification this client was generated from. */
export const API_VERSION = '2.0.0'

export type Schemas = components['schemas']
export type TokenResponse = Schemas['TokenResponse']
export type Task = Schemas['Task']
export type TaskDetail = Schemas['TaskDetail']
export type UpdateTaskRequest = Schemas['UpdateTaskRequest']

export interface Credentials {
  email: string
  password: string
}

/** What the client needs to call the API on a user's behalf; what `onTokens` hands over to persist. */
export interface TokenSet {
  access_token: string
  /** Rotates on every refresh: persist the newest one (an already-used one revokes the session). */
  refresh_token: string
  /** When the access token expires (RFC 3339), when known. */
  expires_at?: string
}

export interface ApiClientOptions {
  /** Where the API is, e.g. `https://monitoring.example.com` (paths start with `/api`). */
  baseUrl: string
  /** Signs in with these when needed (lazily, and when a refresh fails). Kept in memory only. */
  credentials?: Credentials
  /** Tokens from an earlier session (e.g. persisted from `onTokens`). */
  tokens?: TokenSet
  /** Called with the new tokens after each sign-in and refresh, and with `null` when they are gone. */
  onTokens?: (tokens: TokenSet | null) => void | Promise<void>
  /** The fetch to use (default: globalThis.fetch). */
  fetch?: FetchLike
  /** `User-Agent` to send (default `@cloud-monitoring/api-client/<version>` outside browsers). */
  userAgent?: string
  /** Headers sent with every request. */
  headers?: Record<string, string>
  /** Aborts each HTTP attempt after this many ms (default: no timeout; pass `signal` for a per-call one). */
  timeoutMs?: number
  /** Waiting out `Retry-After` on 429/503 (default: 3 attempts, idempotent methods only); `false`: off. */
  retry?: RetryOptions | false
}

type GetOperation<P extends keyof paths> = paths[P] extends { get: infer O } ? O : never
type JsonOk<O> = O extends { responses: { 200: { content: { 'application/json': infer B } } } } ? B : never
type Page = { items: readonly unknown[], next_cursor: string | null }

/** The paths whose GET answers a page: `{ items, next_cursor }`. */
export type ListPath = { [P in keyof paths]: [JsonOk<GetOperation<P>>] extends [never] ? never : JsonOk<GetOperation<P>> extends Page ? P : never }[keyof paths]
/** The item type of a list path. */
export type ListItem<P extends ListPath> = JsonOk<GetOperation<P>> extends { items: ReadonlyArray<infer I> } ? I : never
type ListParameters<P extends ListPath> = GetOperation<P> extends { parameters: infer X } ? X : never
type ListQuery<P extends ListPath> = ListParameters<P> extends { query?: infer Q } ? NonNullable<Q> : never
type ListPathParams<P extends ListPath> = ListParameters<P> extends { path: infer X } ? X : never

export interface PaginateInit<P extends ListPath> {
  /** The filters and `limit` (page size); `cursor` resumes from a page. */
  params?: { query?: ListQuery<P>, path?: ListPathParams<P> }
  headers?: Record<string, string>
  signal?: AbortSignal
}

export interface ETagUpdate<T, C, R> {
  /** Reads the resource; its answer must carry an `ETag`. */
  get: () => Promise<ResultLike<T>>
  /** Computes the change from the current state (called again after each 412); throw to give up. */
  apply: (current: T, attempt: number) => C | Promise<C>
  /** Writes the change with `If-Match: etag`. */
  update: (change: C, etag: string) => Promise<ResultLike<R>>
  /** Read-apply-write rounds in all before a 412 is thrown as ApiError (default 3). */
  maxAttempts?: number
}

export type TaskChange = UpdateTaskRequest | ((task: TaskDetail, attempt: number) => UpdateTaskRequest | Promise<UpdateTaskRequest>)

export interface ApiClient extends Client<paths> {
  /** Signs in now; with `credentials`, these replace the stored ones once the sign-in succeeds. */
  signIn: (credentials?: Credentials) => Promise<TokenResponse>
  /** Revokes the session on the server, forgets the tokens and the credentials, calls `onTokens(null)`. */
  signOut: () => Promise<void>
  /** The current tokens (a copy), if any. */
  getTokens: () => TokenSet | undefined
  /** Every item of a list, page after page, until `next_cursor` is null. Throws ApiError on an error page. */
  paginate: <P extends ListPath>(path: P, init?: PaginateInit<P>) => AsyncGenerator<ListItem<P>, void, undefined>
  /** Optimistic update: GET (ETag), apply, PUT with If-Match; on 412 read and apply again. */
  updateWithETag: <T, C, R>(update: ETagUpdate<T, C, R>) => Promise<R>
  /** `updateWithETag` for `PUT /api/tasks/{id}`: `change` is a body or a function of the current task. */
  updateTask: (id: string, change: TaskChange, options?: { maxAttempts?: number, signal?: AbortSignal }) => Promise<Task>
}

const AUTH_ROUTES = new Set(['/api/auth/login', '/api/auth/refresh'])
/** Routes that take no bearer token (the spec's `security: []` and the API-key ingestion route). */
const PUBLIC_ROUTES = new Set([...AUTH_ROUTES, '/api/health', '/api/events/ingest'])

/**
 * Optimistic concurrency with `ETag`/`If-Match`: reads the resource, lets `apply` compute the
 * change from what it read, and writes it only if nobody changed the resource in between. When
 * someone did (`412 precondition_failed`), reads again and calls `apply` again with the new state,
 * up to `maxAttempts` rounds; then throws the last 412 as ApiError. Any other error is thrown at
 * once. `apply` should be a function of the current state (e.g. "raise the priority one level"):
 * a constant change would simply overwrite the other writer.
 */
export async function updateWithETag<T, C, R> ({ get, apply, update, maxAttempts = 3 }: ETagUpdate<T, C, R>): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    const current = await get()
    if (!current.response.ok) throw ApiError.from(current)
    const etag = current.response.headers.get('etag')
    if (!etag) throw new Error('updateWithETag: the resource was read without an ETag')
    const change = await apply(current.data as T, attempt)
    const result = await update(change, etag)
    if (result.response.ok) return result.data as R
    if (result.response.status !== 412 || attempt >= maxAttempts) throw ApiError.from(result)
  }
}

export function createApiClient (options: ApiClientOptions): ApiClient {
  const { baseUrl, onTokens } = options
  const baseFetch: FetchLike = options.fetch ?? (request => globalThis.fetch(request))
  const attempt = withTimeout(baseFetch, options.timeoutMs)
  const retry: RetryOptions = options.retry === false ? { maxAttempts: 1 } : options.retry ?? {}
  const send = withRetryAfter(attempt, retry)
  // A refresh token is spent by the request: sending it twice would revoke the session.
  const sendAuth = withRetryAfter(attempt, { ...retry, retryPost: false })

  const headers: Record<string, string> = {}
  const inBrowser = (globalThis as { document?: unknown }).document !== undefined
  if (options.userAgent ?? !inBrowser) headers['user-agent'] = options.userAgent ?? `@cloud-monitoring/api-client/${CLIENT_VERSION}`
  Object.assign(headers, options.headers)

  let basePath = ''
  try { basePath = new URL(baseUrl).pathname.replace(/\/+$/, '') } catch { basePath = '' }
  const routeOf = (url: string): string => {
    const p = new URL(url).pathname
    return basePath && p.startsWith(basePath) ? p.slice(basePath.length) : p
  }

  // Secrets live in this closure only: never on the returned object, in errors or in logs.
  let credentials: Credentials | undefined = options.credentials && { email: options.credentials.email, password: options.credentials.password }
  let tokens: TokenSet | undefined = options.tokens && { ...options.tokens }
  let renewing: Promise<TokenSet | undefined> | undefined

  const authClient = createClient<paths>({ baseUrl, headers, fetch: request => sendAuth(request) })

  async function store (body: TokenResponse): Promise<TokenResponse> {
    tokens = {
      access_token: body.access_token,
      refresh_token: body.refresh_token,
      expires_at: new Date(Date.now() + body.expires_in * 1000).toISOString()
    }
    await onTokens?.({ ...tokens })
    return body
  }

  async function login (using = credentials): Promise<TokenResponse> {
    if (!using) throw new Error('createApiClient: no credentials to sign in with')
    const result = await authClient.POST('/api/auth/login', { body: { email: using.email, password: using.password } })
    if (!result.data) throw ApiError.from(result, 'POST')
    credentials = using
    return store(result.data)
  }

  async function refresh (refreshToken: string): Promise<TokenResponse> {
    const result = await authClient.POST('/api/auth/refresh', { body: { refresh_token: refreshToken } })
    if (!result.data) throw ApiError.from(result, 'POST')
    return store(result.data)
  }

  /** New tokens: refresh, else log in; undefined when there is nothing to do it with. */
  async function obtainTokens (): Promise<TokenSet | undefined> {
    const refreshToken = tokens?.refresh_token
    if (refreshToken) {
      try {
        await refresh(refreshToken)
        return tokens
      } catch (err) {
        if (!(err instanceof ApiError)) throw err
        if (err.status === 401) {
          // The refresh token is dead (expired, revoked, or spent elsewhere).
          tokens = undefined
          if (!credentials) {
            await onTokens?.(null)
            return undefined
          }
        } else if (!credentials) {
          throw err
        }
      }
    }
    if (!credentials) return undefined
    await login()
    return tokens
  }

  /** One renewal at a time: concurrent 401s (and first calls) share it. */
  function renew (): Promise<TokenSet | undefined> {
    renewing ??= obtainTokens().finally(() => { renewing = undefined })
    return renewing
  }

  async function isTokenFailure (response: Response): Promise<boolean> {
    try {
      const code = (await response.clone().json() as { code?: unknown }).code
      // `invalid_credentials` (a wrong current password) is not cured by new tokens.
      return typeof code !== 'string' || code.startsWith('token_')
    } catch {
      return true
    }
  }

  function withBearer (request: Request, token: string | undefined): Request {
    if (token) request.headers.set('authorization', `Bearer ${token}`)
    return request
  }

  /** The fetch behind the typed client: bearer token, one renewal and retry on 401, Retry-After. */
  async function authFetch (request: Request): Promise<Response> {
    // openapi-fetch puts unknown call options on the Request: `{ retryPost: true }` opts one call in.
    const call = { retryPost: (request as Request & { retryPost?: unknown }).retryPost === true }
    if (PUBLIC_ROUTES.has(routeOf(request.url)) || request.headers.has('authorization')) return send(request, call)
    if (renewing) await renewing.catch(() => undefined)
    let used = tokens?.access_token
    if (!used && credentials) used = (await renew())?.access_token
    const first = await send(withBearer(request.clone(), used), call)
    if (first.status !== 401 || !(await isTokenFailure(first))) return first
    // Someone else may have renewed the tokens while this request was on its way.
    let next = tokens?.access_token
    if (!next || next === used) next = (await renew())?.access_token
    if (!next || next === used) return first
    await first.body?.cancel().catch(() => undefined)
    return send(withBearer(request, next), call)
  }

  const client = createClient<paths>({ baseUrl, headers, fetch: authFetch })

  async function signIn (newCredentials?: Credentials): Promise<TokenResponse> {
    if (renewing) await renewing.catch(() => undefined)
    return login(newCredentials ? { email: newCredentials.email, password: newCredentials.password } : credentials)
  }

  async function signOut (): Promise<void> {
    if (renewing) await renewing.catch(() => undefined)
    const current = tokens
    tokens = undefined
    credentials = undefined
    try {
      if (!current) return
      const logout = (t: TokenSet) => authClient.POST('/api/auth/logout', {
        headers: { authorization: `Bearer ${t.access_token}` },
        body: { refresh_token: t.refresh_token }
      })
      let result = await logout(current)
      if (result.response.status === 401) {
        // The access token has expired: a refresh gives one to revoke the session with.
        const fresh = await authClient.POST('/api/auth/refresh', { body: { refresh_token: current.refresh_token } })
        if (!fresh.data) return // the session is already over
        result = await logout(fresh.data)
      }
      if (!result.response.ok) throw ApiError.from(result, 'POST')
    } finally {
      await onTokens?.(null)
    }
  }

  async function * paginate<P extends ListPath> (path: P, init: PaginateInit<P> = {}): AsyncGenerator<ListItem<P>, void, undefined> {
    const { cursor: start, ...query } = (init.params?.query ?? {}) as Record<string, unknown>
    const get = client.GET as unknown as (path: string, init: unknown) => Promise<ResultLike<Page>>
    const seen = new Set<string>()
    let cursor = typeof start === 'string' ? start : undefined
    for (;;) {
      const page = await get(path, { ...init, params: { ...init.params, query: cursor ? { ...query, cursor } : query } })
      if (!page.response.ok || !page.data) throw ApiError.from(page, 'GET')
      for (const item of page.data.items) yield item as ListItem<P>
      const next = page.data.next_cursor
      if (!next) return
      if (seen.has(next)) throw new Error(`paginate: ${path} returned the same next_cursor twice`)
      seen.add(next)
      cursor = next
    }
  }

  function updateTask (id: string, change: TaskChange, opts: { maxAttempts?: number, signal?: AbortSignal } = {}): Promise<Task> {
    const { signal, maxAttempts } = opts
    return updateWithETag<TaskDetail, UpdateTaskRequest, Task>({
      get: () => client.GET('/api/tasks/{id}', { params: { path: { id } }, signal }),
      apply: typeof change === 'function' ? change : () => change,
      update: (body, etag) => client.PUT('/api/tasks/{id}', { params: { path: { id }, header: { 'If-Match': etag } }, body, signal }),
      maxAttempts
    })
  }

  return {
    ...client,
    signIn,
    signOut,
    getTokens: () => (tokens && { ...tokens }),
    paginate,
    updateWithETag,
    updateTask
  }
}
