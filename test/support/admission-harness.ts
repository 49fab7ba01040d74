// One admission test world: a fresh database with the packet applied, the worker's least-privilege
// pool, a Temporal client, and the real admission worker on a task queue of its own. Beside it, what
// the tests read back from the database (everything written for a code, the permit's and the birth's
// logged moves) and a hold on governed inserts that keeps an admission in INSERTING.
import { randomInt } from 'node:crypto';
import type { Client } from '@temporalio/client';
import pg from 'pg';
import { status } from '../../client/admissions.ts';
import type { AdmissionState, Stage } from '../../contracts/admission.ts';
import { createPool, type Pool } from '../../db/pool.ts';
import { DEFAULT_ACTIVITY_SLOTS } from '../../workers/admission-worker.ts';
import { prepareAdmissionWorld } from './admission-world.ts';
import { freshDatabase, type FreshDatabase } from './db.ts';
import { eventually, type RunningWorker, startAdmissionWorker, temporalClient, uniqueTaskQueue } from './temporal.ts';

export type AdmissionHarness = {
  db: FreshDatabase;
  workerUrl: string;
  workerPool: Pool;
  client: Client;
  taskQueue: string;
  worker: RunningWorker | undefined;
  startWorker(): Promise<RunningWorker>;
  stop(): Promise<void>;
};

export async function admissionHarness(prefix: string, opts: { worker?: boolean } = {}): Promise<AdmissionHarness> {
  const db = await freshDatabase(prefix);
  // pg-pool's end() resolves before its sockets close; DROP DATABASE … WITH (FORCE) in dispose() then
  // terminates them and the pool re-emits that as 'error' — harmless at teardown, fatal unhandled.
  db.pool.on('error', () => undefined);
  const { workerUrl } = await prepareAdmissionWorld(db.pool, db.url);
  const workerPool = createPool(workerUrl, { max: DEFAULT_ACTIVITY_SLOTS, applicationName: `test-worker-${prefix}` });
  workerPool.on('error', () => undefined); // same teardown race as above
  const t = await temporalClient();
  const h: AdmissionHarness = {
    db,
    workerUrl,
    workerPool,
    client: t.client,
    taskQueue: uniqueTaskQueue(prefix),
    worker: undefined,
    async startWorker() {
      h.worker = await startAdmissionWorker({ taskQueue: h.taskQueue, pool: workerPool });
      return h.worker;
    },
    async stop() {
      await h.worker?.stop();
      await t.close();
      await workerPool.end();
      await db.dispose();
    },
  };
  if (opts.worker !== false) await h.startWorker();
  return h;
}

/** A code the dot_tools family rule accepts, unique across test runs sharing one Temporal server. */
export const freshCode = () => `DOT-${randomInt(1e8, 1e9)}`;

export type Written = {
  rows: number;
  births: { id: string; status: string }[];
  permits: { permit_id: string; state: string; break_glass: boolean; row_id: string | null; birth_id: string | null }[];
  breakGlass: number;
};

/** Everything the database holds for one (code, dot_tools): rows, births, permits, break-glass entries. */
export async function written(pool: Pool, code: string): Promise<Written> {
  const q = async <T>(sql: string) => (await pool.query(sql, [code])).rows as T[];
  const [rows] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM dot_tools WHERE code = $1`);
  return {
    rows: rows!.n,
    births: await q(`SELECT id::text, status FROM birth_registry WHERE entity_code = $1 AND collection_name = 'dot_tools' ORDER BY id::bigint`),
    permits: await q(
      `SELECT permit_id::text, state, break_glass, row_id::text, birth_id::text FROM birth_admission_permit WHERE entity_code = $1 ORDER BY permit_id::bigint`,
    ),
    breakGlass: (await q<{ n: number }>(`SELECT count(*)::int AS n FROM birth_break_glass WHERE entity_code = $1`))[0]!.n,
  };
}

/** The permit's logged transitions, oldest first, as [from, to]. */
export async function permitTransitions(pool: Pool, permitId: string): Promise<[string | null, string][]> {
  const { rows } = await pool.query<{ from_state: string | null; to_state: string }>(
    'SELECT from_state, to_state FROM birth_admission_permit_transition WHERE permit_id = $1 ORDER BY transition_id', [permitId]);
  return rows.map((r) => [r.from_state, r.to_state]);
}

/** The logged status moves of (code, dot_tools)'s births, oldest first, with who made them. */
export async function birthTransitions(pool: Pool, code: string): Promise<{ from: string | null; to: string; actor: string }[]> {
  const { rows } = await pool.query<{ from: string | null; to: string; actor: string }>(
    `SELECT from_status AS from, to_status AS to, actor FROM birth_status_transition
      WHERE entity_code = $1 AND collection_name = 'dot_tools' ORDER BY transition_id`, [code]);
  return rows;
}

/**
 * A superuser session holding dot_tools in SHARE mode until release(): every governed insert waits,
 * its attempts end by the worker's lock_timeout (3 s) and are retried, so an admission stays INSERTING
 * — a window in which an operator's decision or a cancel reaches a running admission before its
 * insert commits. Reads (preflight, the ledger) are not blocked.
 */
export async function holdInserts(url: string): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url, application_name: 'test-hold-inserts' });
  c.on('error', () => undefined);
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE dot_tools IN SHARE MODE');
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await c.query('ROLLBACK');
      await c.end();
    },
  };
}

/** Wait until the admission of `code` reports `stage` (the workflow's own state, by query). */
export async function untilStage(client: Client, code: string, stage: Stage, timeoutMs = 30_000): Promise<AdmissionState> {
  return eventually(async () => {
    const s = (await status(client, { code }, { queryTimeoutMs: 2_000 })).state;
    return s?.stage === stage ? s : undefined;
  }, `${code} at ${stage}`, timeoutMs);
}
