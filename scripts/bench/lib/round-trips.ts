/**
 * Round trips per operation, for the bench's `roundtrips` phase (issue 21: how the service
 * behaves where every DynamoDB call costs a network round trip). In the server under
 * benchmark: every call of the app's DynamoDB client waits `delayMs` first (a client
 * middleware: the stand-in answers in well under a millisecond, real DynamoDB in a few), and
 * each request's calls are counted in its async context:
 *
 * - `calls`: how many DynamoDB calls the request made;
 * - `sequential`: how many of them started while no other call of the same request was in
 *   flight, i.e. the length of the request's chain of waits. Calls issued together
 *   (`Promise.all`) count once; a call that depends on the answer of another counts again.
 *
 * Only answers below 300 count (an error path says nothing about the operation's hot path).
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DynamoDB } from '@aws-sdk/client-dynamodb'
import type { FastifyInstance } from 'fastify'

interface RequestCount { calls: number, sequential: number, inFlight: number }

/** Per operation: one entry per counted request. */
export interface OperationRoundTrips { calls: number[], sequential: number[], ms: number[] }
export type RoundTripStats = Record<string, OperationRoundTrips>

export function instrumentRoundTrips (app: FastifyInstance & { db: { client: DynamoDB } }, delayMs: number): { snapshot: () => RoundTripStats, reset: () => void } {
  const context = new AsyncLocalStorage<RequestCount>()
  let stats: RoundTripStats = {}

  app.db.client.middlewareStack.add((next) => async (args) => {
    const count = context.getStore()
    if (count) {
      if (count.inFlight === 0) count.sequential++
      count.calls++
      count.inFlight++
    }
    try {
      if (delayMs > 0) await sleep(delayMs)
      return await next(args)
    } finally {
      if (count) count.inFlight--
    }
  }, { step: 'initialize', name: 'benchRoundTrips' })

  // The whole request (every hook, the handler, the serialiser) runs inside its context.
  app.addHook('onRequest', (request, _reply, done) => {
    context.run({ calls: 0, sequential: 0, inFlight: 0 }, done)
  })
  app.addHook('onResponse', async (request, reply) => {
    const count = context.getStore()
    const operation = request.routeOptions.config?.operationId
    if (!count || !operation || reply.statusCode >= 300) return
    const entry = (stats[operation] ??= { calls: [], sequential: [], ms: [] })
    entry.calls.push(count.calls)
    entry.sequential.push(count.sequential)
    entry.ms.push(reply.elapsedTime)
  })
  return { snapshot: () => stats, reset: () => { stats = {} } }
}
