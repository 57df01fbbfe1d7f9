/**
 * The orval mutator we recommend: every generated function calls it with the operation's
 * path and RequestInit. It adds the base URL and the bearer token (orval ignores the spec's
 * security schemes) and returns `{ data, status, headers }`, the shape orval's fetch client
 * types its responses with (one member per documented status).
 */
const state: { baseUrl: string, token: string | undefined, apiKey: string | undefined } = { baseUrl: '', token: undefined, apiKey: undefined }

export function configure (options: { baseUrl?: string, token?: string | undefined, apiKey?: string | undefined }): void {
  Object.assign(state, options)
}

export const apiFetch = async <T>(url: string, init: RequestInit): Promise<T> => {
  const headers = new Headers(init.headers)
  if (state.token && !headers.has('authorization')) headers.set('authorization', `Bearer ${state.token}`)
  const res = await fetch(`${state.baseUrl}${url}`, { ...init, headers })
  const text = [204, 205, 304].includes(res.status) ? '' : await res.text()
  return { data: text ? JSON.parse(text) : undefined, status: res.status, headers: res.headers } as T
}
