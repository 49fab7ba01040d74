// What every benchmark gets: the run's real servers, and a way to make an isolated database.
import { createScratchDatabase, type ScratchDatabase } from '../db/scratch.ts';

export type BenchDatabase = ScratchDatabase;

export type BenchContext = {
  adminUrl: string;
  temporalAddress: string;
  namespace: string;
  log: (line: string) => void;
  freshDatabase(prefix: string): Promise<BenchDatabase>;
};

/** One table of figures; `ratio` columns are against a baseline measured in the same run. */
export type BenchReport = { title: string; rows: Array<Record<string, string | number>>; notes: string[] };

export function makeFreshDatabase(adminUrl: string) {
  return (prefix: string): Promise<BenchDatabase> => createScratchDatabase(adminUrl, `bench_${prefix}`, { max: 60 });
}

export function formatReport(r: BenchReport): string {
  const cols = [...new Set(r.rows.flatMap((row) => Object.keys(row)))];
  const cell = (v: string | number | undefined) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : (v ?? ''));
  const widths = cols.map((c) => Math.max(c.length, ...r.rows.map((row) => cell(row[c]).length)));
  const line = (vals: string[]) => `  ${vals.map((v, i) => v.padEnd(widths[i]!)).join('  ')}`;
  return [
    `## ${r.title}`,
    line(cols),
    line(widths.map((w) => '-'.repeat(w))),
    ...r.rows.map((row) => line(cols.map((c) => cell(row[c])))),
    ...r.notes.map((n) => `  note: ${n}`),
  ].join('\n');
}
