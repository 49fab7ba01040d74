// A throwaway database on a cluster we administer: tests and benchmarks each make their own.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { createPool, withClient, withDatabase } from './pool.ts';

export type ScratchDatabase = {
  name: string;
  /** Superuser URL of the new database. */
  url: string;
  pool: pg.Pool;
  dispose(): Promise<void>;
};

export async function createScratchDatabase(adminUrl: string, prefix: string, opts: { max?: number } = {}): Promise<ScratchDatabase> {
  const safe = prefix.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 30);
  const name = `bg_${safe}_${randomBytes(4).toString('hex')}`;
  await withClient(adminUrl, (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
  const url = withDatabase(adminUrl, name);
  const pool = createPool(url, { max: opts.max ?? 8, applicationName: `scratch-${safe}` });
  // 'error' on a pool comes only from idle clients (a query's error goes to its caller); at teardown
  // the FORCE drop below may end one, which must not crash the process.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    pool,
    async dispose() {
      await pool.end();
      await withClient(adminUrl, async (c) => {
        // pg-pool's end() only sends Terminate; a backend still on its way out (this pool's, or a
        // worker pool ended just before) would be killed by FORCE, and its client, no longer
        // listened to, would raise "terminating connection due to administrator command" as an
        // uncaught exception. Wait briefly for them to leave; FORCE handles real leaks.
        for (let i = 0; i < 100; i++) {
          const r = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1', [name]);
          if (r.rows[0]!.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      });
    },
  };
}
