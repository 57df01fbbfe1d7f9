/** True when DynamoDB refused a write because its condition did not hold. */
export function isConditionFailed (err: unknown): boolean {
  const e = err as { name?: string, code?: string } | null
  return e?.name === 'ConditionalCheckFailedException' || e?.code === 'ConditionalCheckFailedException'
}
