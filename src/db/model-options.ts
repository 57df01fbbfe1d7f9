/**
 * How every model is declared: Dynamoose creates, waits for and initializes nothing by itself;
 * src/db/tables.ts does that once at start-up (in parallel) and only where allowed.
 */
export const MODEL_OPTIONS = { create: false, waitForActive: false, initialize: false, throughput: 'ON_DEMAND' as const }
