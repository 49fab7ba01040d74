// Governance handoff throughput (issue 9 item 2b) on the prod-scale world: the 70,434 rows of
// registry_changelog handed off from cursor 0 (every row: its candidate upserted dirty, the cursor
// advanced, the batch logged) beside a plain SELECT of the same rows, fetched by the same client, in the
// same run. Target: the handoff at ≥ 25% of the plain SELECT *'s rows/s.
//
//   0. plain SELECT: every column of the rows, ordered by id (the target's baseline), and 0b. only the
//      columns the handoff reads (id, table_name, entity_code), a stricter reference;
//   a. the SQL floor: fn_governance_handoff_batch called in a loop on one connection, no Temporal, at
//      5,000 and 1,000 rows per batch;
//   b. birthgate: a catch-up run of governanceHandoff (catchUpGovernanceHandoff), each batch an
//      activity task, at 5,000 rows per batch (the defaults) and at 1,000;
//   c. the same with the batches as local activities.
// Each variant runs RUNS times from the same start (cursor 0, no candidates) and reports its median;
// each run is checked: every row handed off exactly once.
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import pg from 'pg';
import { catchUpGovernanceHandoff, governanceHandoffWorkflowId } from '../client/handoff.ts';
import { createPool } from '../db/pool.ts';
import { installBaseline } from '../fixtures/baseline.ts';
import { loadWorld } from '../fixtures/world.ts';
import { workerUrlFrom } from '../stack/endpoints.ts';
import { applyStepsSql, packetSteps } from '../test/support/packet-sql.ts';
import { installWorkerRole, workerPassword } from '../test/support/packet-world.ts';
import { bundleAdmissionWorkflows, createAdmissionWorker, DEFAULT_ACTIVITY_SLOTS } from '../workers/admission-worker.ts';
import type { BenchContext, BenchReport } from './context.ts';

const SCALE = (process.env.BIRTHGATE_BENCH_HANDOFF_SCALE ?? 'prod') as 'prod' | 'test';
const RUNS = Number(process.env.BIRTHGATE_BENCH_HANDOFF_RUNS ?? 3);
const TARGET = 0.25;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchHandoff(ctx: BenchContext): Promise<BenchReport[]> {
  const db = await ctx.freshDatabase('handoff');
  ctx.log(`handoff: loading the ${SCALE}-scale world …`);
  await installBaseline(db.pool);
  await loadWorld(db.pool, { scale: SCALE });
  ctx.log('handoff: applying the packet …');
  await applyStepsSql(db.pool, Math.max(...packetSteps().map((s) => s.meta.step)));
  await installWorkerRole(db.pool, workerPassword);
  await db.pool.query('VACUUM (ANALYZE)');
  const database = (await db.pool.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
  const total = Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM registry_changelog')).rows[0]!.n);

  const pool = createPool(workerUrlFrom(db.url, workerPassword), { max: DEFAULT_ACTIVITY_SLOTS, applicationName: 'bench-handoff' });
  const reader = new pg.Client({ connectionString: db.url, application_name: 'bench-handoff-select' });
  await reader.connect();
  const nativeConnection = await NativeConnection.connect({ address: ctx.temporalAddress });
  const connection = await Connection.connect({ address: ctx.temporalAddress });
  const client = new Client({ connection, namespace: ctx.namespace });
  const taskQueue = `bench-handoff-${process.pid}-${Date.now()}`;
  const worker = await createAdmissionWorker({
    connection: nativeConnection, namespace: ctx.namespace, taskQueue, pool, workflowBundle: await bundleAdmissionWorkflows(),
  });
  const running = worker.run();

  // Every variant starts from the same state: the changelog tail at 0, no candidates, no history.
  const reset = async () => {
    await db.pool.query(`DELETE FROM birth_handoff_batch WHERE source = 'registry_changelog'`);
    await db.pool.query(`DELETE FROM birth_handoff_gap WHERE source = 'registry_changelog'`);
    await db.pool.query(`UPDATE birth_handoff_cursor SET last_id = 0, rows_handed_off = 0, batches = 0 WHERE source = 'registry_changelog'`);
    await db.pool.query('TRUNCATE governance_candidate_state');
    await db.pool.query('VACUUM (ANALYZE) governance_candidate_state, birth_handoff_batch, birth_handoff_cursor');
  };
  const check = async (label: string) => {
    const r = await db.pool.query<{ n: string; d: string }>(`SELECT count(*) AS n, count(DISTINCT i) AS d FROM birth_handoff_batch b, unnest(b.ids) AS i
      WHERE b.source = 'registry_changelog'`);
    if (Number(r.rows[0]!.n) !== total || Number(r.rows[0]!.d) !== total) {
      throw new Error(`${label}: ${r.rows[0]!.n} rows handed off (${r.rows[0]!.d} distinct), expected each of ${total} once`);
    }
  };
  const timed = async (label: string, once: () => Promise<unknown>, before?: () => Promise<void>) => {
    const seconds: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      if (before) await before();
      const t0 = performance.now();
      await once();
      seconds.push((performance.now() - t0) / 1000);
      if (before) await check(label);
    }
    ctx.log(`handoff: ${label}: ${seconds.map((s) => s.toFixed(2)).join(' / ')} s`);
    return { label, seconds: median(seconds) };
  };

  const select = (cols: string) => async () => {
    const r = await reader.query(`SELECT ${cols} FROM registry_changelog ORDER BY id`);
    if (r.rowCount !== total) throw new Error(`SELECT read ${r.rowCount} rows, expected ${total}`);
  };
  const sqlFloor = (limit: number) => async () => {
    for (;;) {
      const r = await pool.query<{ r: { more: boolean } }>('SELECT fn_governance_handoff_batch($1, $2, $3) AS r', [database, limit, 'bench-sql']);
      if (!r.rows[0]!.r.more) break;
    }
  };
  const workflow = (batchSize: number, activities: 'local' | 'remote') => async () => {
    // One run at a time under the tail's own id (a finished run's id is reused: ALLOW_DUPLICATE).
    const out = await catchUpGovernanceHandoff(client, { taskQueue, database, batchSize, activities, batchesPerRun: 5_000 });
    if (out.attached) throw new Error('a tail was already running');
    return out;
  };

  const results: Array<{ label: string; seconds: number }> = [];
  try {
    ctx.log(`handoff: ${total} changelog rows; warming …`);
    await select('*')();
    await reset();
    await sqlFloor(5_000)();
    await reset();
    await workflow(5_000, 'remote')();
    const base = await timed('0. plain SELECT * … ORDER BY id', select('*'));
    const baseNarrow = await timed('0b. plain SELECT id, table_name, entity_code … ORDER BY id', select('id, table_name, entity_code'));
    results.push(base, baseNarrow);
    results.push(await timed('a. SQL floor: fn_governance_handoff_batch in a loop, 5,000 rows/batch', sqlFloor(5_000), reset));
    results.push(await timed('a. SQL floor: fn_governance_handoff_batch in a loop, 1,000 rows/batch', sqlFloor(1_000), reset));
    results.push(await timed('c. governanceHandoff catch-up, batches as local activities, 5,000 rows/batch', workflow(5_000, 'local'), reset));
    results.push(await timed('b. governanceHandoff catch-up, 1,000 rows/batch', workflow(1_000, 'remote'), reset));
    results.push(await timed('b. governanceHandoff catch-up (the defaults: activity tasks, 5,000 rows/batch)', workflow(5_000, 'remote'), reset));
    const history = await client.workflow.getHandle(governanceHandoffWorkflowId(taskQueue, database)).fetchHistory();

    const perSec = (s: number) => total / s;
    const rows = [...results].sort((x, y) => x.label.localeCompare(y.label, 'en')).map((r) => ({
      variant: r.label,
      rows: total,
      seconds: Number(r.seconds.toFixed(3)),
      'rows/s': Math.round(perSec(r.seconds)),
      'vs SELECT *': r === base || r === baseNarrow ? '' : `${((perSec(r.seconds) / perSec(base.seconds)) * 100).toFixed(0)}%`,
      'vs SELECT 3 cols': r === base || r === baseNarrow ? '' : `${((perSec(r.seconds) / perSec(baseNarrow.seconds)) * 100).toFixed(0)}%`,
    }));
    const dflt = results.find((r) => r.label.includes('the defaults'))!;
    const ratio = (b: { seconds: number }) => perSec(dflt.seconds) / perSec(b.seconds);
    return [{
      title: `Governance handoff: ${total.toLocaleString('en-US')} changelog rows from cursor 0 (${SCALE}-scale world), median of ${RUNS}`,
      rows,
      notes: [
        `target: the handoff (b., the defaults) ≥ ${TARGET * 100}% of a plain SELECT * of the same rows — `
          + `${(ratio(base) * 100).toFixed(0)}% (${ratio(base) >= TARGET ? 'met' : 'MISSED'}); for reference, `
          + `${(ratio(baseNarrow) * 100).toFixed(0)}% of a SELECT of only the three columns the tail reads`,
        'each handoff run starts at cursor 0 with no candidates; every run checked: each changelog id handed off exactly once',
        `the last catch-up run's history: ${history.events?.length ?? 0} events (the defaults)`,
        'the SELECTs fetch every row into node-pg on one connection; a handoff batch upserts one candidate per distinct (table, code) in it (881 in all at prod scale) and writes one history row',
        'Temporal dev server, PostgreSQL, the worker and the client share the machine',
      ],
    }];
  } finally {
    worker.shutdown();
    await running.catch(() => undefined);
    await nativeConnection.close();
    await connection.close();
    await reader.end();
    await pool.end();
    await db.dispose();
  }
}
