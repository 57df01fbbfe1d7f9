import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import { createDashboardService } from './dashboard.service.js'

const dashboardModule: FastifyPluginAsyncTypebox = async (app) => {
  const { stats, events } = app.db.repos
  const service = createDashboardService(stats, (limit) => events.recent(limit))

  app.route({ ...routes.getDashboardOverview, handler: async (request) => service.overview(request.actor!) })
  app.route({ ...routes.getEventsStats, handler: async () => service.eventsStats() })
  app.route({ ...routes.getTasksStats, handler: async (request) => service.tasksStats(request.actor!) })
  app.route({ ...routes.getUsersStats, handler: async () => service.usersStats() })
}

export default dashboardModule
