/**
 * The "Earlier runs" section of docs/performance.md: a full `npm run bench` replaces the report,
 * so it carries over the results table of the report it replaces and the runs that one kept,
 * newest first, at most `EARLIER_RUNS`. Figures from other days (and other VMs) sit next to the
 * new ones without anyone editing the generated file by hand.
 */

export const EARLIER_RUNS = 3
export const EARLIER_HEADING = '## Earlier runs, for comparison'

interface Run { title: string, table: string[] }

/** The table that starts at line `from` (consecutive lines starting with `|`). */
function tableAt (lines: string[], from: number): string[] {
  const table: string[] = []
  for (let i = from; i < lines.length && lines[i]!.startsWith('|'); i++) table.push(lines[i]!)
  return table
}

/** The first table after the line `heading`, or [] when there is none. */
function tableAfter (lines: string[], heading: string): string[] {
  const at = lines.indexOf(heading)
  if (at < 0) return []
  const start = lines.findIndex((l, i) => i > at && l.startsWith('|'))
  return start < 0 ? [] : tableAt(lines, start)
}

/** The runs a report describes: its own results, then those of its earlier-runs section. */
export function runsOf (report: string): Run[] {
  const lines = report.split('\n')
  const runs: Run[] = []
  const date = /^- \*\*Date:\*\* (\S+); \*\*commit\*\* (\S+)/.exec(lines.find(l => l.startsWith('- **Date:**')) ?? '')
  const machine = /^- \*\*Machine:\*\* (.+)$/.exec(lines.find(l => l.startsWith('- **Machine:**')) ?? '')
  const own = tableAfter(lines, '## Results')
  if (date && own.length) runs.push({ title: `Results of ${date[2]} (${date[1]}${machine ? `; ${machine[1]}` : ''}):`, table: own })
  const section = lines.indexOf(EARLIER_HEADING)
  if (section >= 0) {
    for (let i = section + 1; i < lines.length; i++) {
      const line = lines[i]!
      if (line.startsWith('## ')) break
      // "Results of <commit> …:" (this module's titles) or "Previous results (<commit>):" (older reports).
      if (!/^(Results of |Previous results \()/.test(line)) continue
      const start = lines.findIndex((l, j) => j > i && l.startsWith('|'))
      if (start < 0) break
      runs.push({ title: line, table: tableAt(lines, start) })
      i = start
    }
  }
  return runs
}

/**
 * The section for the report of the run of `date` replacing `previous` (absent: no section).
 * The run itself is left out: a report rendered again (BENCH_RENDER) replaces its own.
 */
export function earlierRunsSection (previous: string | undefined, date: string): string {
  const runs = previous ? runsOf(previous).filter(run => !run.title.includes(`(${date}`)).slice(0, EARLIER_RUNS) : []
  if (!runs.length) return ''
  return [
    EARLIER_HEADING,
    '',
    `Carried over by \`npm run bench\` from the reports it replaced, newest first (at most ${EARLIER_RUNS}). The VMs and their load differ from run to run: compare the **ratios**, not the absolute times.`,
    '',
    ...runs.flatMap(run => [run.title, '', ...run.table, '']),
    ''
  ].join('\n')
}
