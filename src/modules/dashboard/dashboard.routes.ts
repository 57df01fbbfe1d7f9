import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { routes } from '../../../openapi/generated/routes.js'
import type { ListedEvent } from '../../domain/events.js'
import { createDashboardService } from './dashboard.service.js'
import type { StatsRepository } from './stats.repository.js'

/** The counters (this module's), and the events module's latest events. */
export interface DashboardModuleOptions {
  stats: StatsRepository
  recentEvents: (limit: number) => Promise<ListedEvent[]>
}

const dashboardModule: FastifyPluginAsyncTypebox<DashboardModuleOptions> = async (app, { stats, recentEvents }) => {
  const service = createDashboardService(stats, recentEvents)

  app.route({ ...routes.getDashboardOverview, handler: async (request) => service.overview(request.actor!) })
  app.route({ ...routes.getEventsStats, handler: async () => service.eventsStats() })
  app.route({ ...routes.getTasksStats, handler: async (request) => service.tasksStats(request.actor!) })
  app.route({ ...routes.getUsersStats, handler: async () => service.usersStats() })
}

export default dashboardModule
