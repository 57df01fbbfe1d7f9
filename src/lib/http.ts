import type { FastifyReply } from 'fastify'

/** 204 No Content (the typed reply of a route has no 204 body schema to satisfy). */
export const noContent = (reply: FastifyReply): FastifyReply => reply.code(204).send()
