/**
 * The reference of the start-up figure: a bare Fastify process with one health route, started
 * and measured the same way as src/server.ts (process start → first 200).
 */
import Fastify from 'fastify'

const app = Fastify()
app.get('/api/health', async () => ({ status: 'ok' }))
await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
process.on('SIGTERM', () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
