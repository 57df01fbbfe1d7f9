/**
 * Item sizes and write/read units of the items on the hot paths (docs/capacity.md), computed as
 * DynamoDB counts them (src/db/item-size.ts), from the repositories' own item builders and the
 * AWS fixtures; and, where the embedded stand-in reports it, ConsumedCapacity of the same writes.
 * Run: npx tsx scripts/capacity-sizes.ts
 */
import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { itemSize } from '../src/db/item-size.js'
import { eventItem } from '../src/modules/events/events.repository.js'
import { taskItem } from '../src/modules/tasks/tasks.repository.js'
import { adaptEnvelope } from '../src/domain/event-adapters.js'
import { newTask } from '../src/domain/tasks.js'
import { newEvent } from '../src/domain/events.js'
import { DEFAULT_MONITORING_SETTINGS } from '../src/domain/monitoring-settings.js'

const dir = path.join(import.meta.dirname, '../test/fixtures/events')
const wcu = (bytes: number): number => Math.ceil(bytes / 1024)
const rcu = (bytes: number): number => Math.ceil(bytes / 4096)
const rows: string[] = []
for (const file of readdirSync(dir).filter(f => f.endsWith('.json'))) {
  const envelope = JSON.parse(readFileSync(path.join(dir, file), 'utf8'))
  const adapted = adaptEnvelope(envelope, { ...DEFAULT_MONITORING_SETTINGS, version: 1, updated_at: new Date().toISOString(), updated_by: null } as never, Date.now())
  const first = adapted.find(r => r.kind === 'event')
  if (!first || first.kind !== 'event') continue
  const ev = first.event
  const now = new Date().toISOString()
  const event = newEvent('01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', envelope.account, ev, envelope, now, 0)
  const item = eventItem(event) as unknown as Record<string, unknown>
  const { raw: _raw, ...listed } = item
  rows.push(`${file}: event item ${itemSize(item)} B (${wcu(itemSize(item))} WCU, ${rcu(itemSize(item))} RCU strong), without raw ${itemSize(listed)} B`)
}
const task = taskItem(newTask('01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', new Date().toISOString(), { id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TA', role: 'user' }, { title: 'Investigate high CPU on the payments API', description: 'x'.repeat(300), priority: 'high' }, null))
rows.push(`task item (300-character description, no history): ${itemSize(task as unknown as Record<string, unknown>)} B`)
const full = taskItem({ ...newTask('01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', new Date().toISOString(), { id: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TA', role: 'user' }, { title: 'Investigate high CPU on the payments API', description: 'x'.repeat(300), priority: 'high' }, null), status_history: Array.from({ length: 20 }, (_, i) => ({ from: 'open' as const, to: 'in_progress' as const, changed_by: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TA', changed_at: new Date().toISOString(), comment: 'moved along with a short note', key: `v${String(i + 2).padStart(10, '0')}` })) })
rows.push(`task item with 20 history entries: ${itemSize(full as unknown as Record<string, unknown>)} B`)
const counters: Record<string, unknown> = { pk: 'events#3', total: 123456 }
for (const k of ['severity:critical', 'severity:high', 'severity:medium', 'severity:low', 'severity:info', 'source:aws_cloudwatch', 'source:aws_guardduty', 'source:aws_securityhub', 'source:aws_health', 'status:open', 'status:acknowledged', 'status:resolved', 'status:suppressed']) counters[k] = 12345
rows.push(`events counter shard: ${itemSize(counters)} B`)
rows.push(`dedup claim: ${itemSize({ pk: `dedup#123456789012#${'a'.repeat(64)}`, ref: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV', created_at: new Date().toISOString(), by_envelope: 'a'.repeat(36) })} B`)
rows.push(`envelope claim: ${itemSize({ pk: `envelope#123456789012#${'a'.repeat(36)}`, state: 'processing', claimed_at: Date.now(), ttl: 1, ref: '01JDQ2Z5Y3K4M5N6P7Q8R9S0TV' })} B`)
const health: Record<string, unknown> = { pk: 'ingest#123456789012#2026-12-07T05', last_delivery_at: new Date().toISOString(), ttl: 1 }
for (const t of ['CloudWatch Alarm State Change', 'GuardDuty Finding', 'Security Hub Findings - Imported', 'AWS Health Event']) for (const a of ['created', 'updated', 'resolved', 'ignored', 'duplicate']) health[`n|${t}|${a}`] = 100
rows.push(`ingestion health hour item (4 detail types × 5 actions): ${itemSize(health)} B`)
console.log(rows.join('\n'))
