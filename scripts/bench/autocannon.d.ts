// autocannon ships no type declarations: the part of its programmatic API the bench uses.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export interface Request {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
    setupRequest?: (request: Request, context: Record<string, unknown>) => Request
  }

  export interface Options {
    url: string
    connections?: number
    duration?: number
    amount?: number
    timeout?: number
    pipelining?: number
    overallRate?: number
    method?: string
    headers?: Record<string, string>
    body?: string
    requests?: Request[]
    bailout?: number
  }

  export interface Histogram { average: number, mean: number, stddev: number, min: number, max: number, total: number, p50: number, p99: number }

  export interface Result {
    duration: number
    errors: number
    timeouts: number
    non2xx: number
    statusCodeStats: Record<string, { count: number }>
    latency: Histogram
    requests: Histogram & { sent: number }
  }

  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop: () => void
  }

  function autocannon (options: Options): Instance
  export default autocannon
}
