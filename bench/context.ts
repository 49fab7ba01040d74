// What every benchmark gets: the run's real servers, and a way to make an isolated database.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool, withClient, withDatabase } from '../db/pool.ts';

export type BenchDatabase = { name: string; url: string; pool: pg.Pool; dispose(): Promise<void> };

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
  return async (prefix: string): Promise<BenchDatabase> => {
    const name = `bench_${prefix.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${randomBytes(3).toString('hex')}`;
    await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
    const url = withDatabase(adminUrl, name);
    const pool = createPool(url, { max: 60, applicationName: `bench-${prefix}` });
    return {
      name,
      url,
      pool,
      async dispose() {
        await pool.end();
        await withClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
      },
    };
  };
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
