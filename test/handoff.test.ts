// The governance handoff (KB-35E7 §5, KB-3A66 §8; sql/apply/18-governance-handoff, workflows/handoff.ts)
// on a real PostgreSQL 16 and a real Temporal dev server, on the test-scale world:
//   - every changelog row is handed off exactly once across a worker SIGKILLed in the middle of a
//     batch, a writer that commits an early id after later ones did, and an id that is rolled back;
//     the run continues as new on the way; a second run adds nothing;
//   - OSPA = 0 captures handoff.object_born, OSPA >= 1 (a covering, non-revoked authorization) emits
//     and emits the backlog it captured;
//   - a trigger the estate owner plants on the governance tables never runs with birthgate_owner's
//     rights (the batch refuses; the tail waits blocked and resumes when it is gone), and the other
//     refusals, each as the role that attempts it;
//   - a batch held open holds no lock a birth needs, and a birth commits meanwhile;
//   - caught up, the tail waits on a durable timer that backs off, and a wake signal cuts the wait;
//   - step 18 rolls back to the entry fingerprint, its cursor and history archived.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import pg from 'pg';
import { catchUpGovernanceHandoff, ensureGovernanceHandoff, governanceHandoffState } from '../client/handoff.ts';
import { projectRoot } from '../config/index.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { wakeHandoffSignal } from '../workflows/handoff.ts';
import { asDirectus, asWorker, attackNotices, demoteDirectus, isSuperuser, payloadBody, type Session } from './support/attacker.ts';
import type { FreshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';
import {
  applyStep, applyStepsSql, catalogFingerprint, packetSteps, rollbackStepsSql, verifyStep,
} from './support/packet-sql.ts';
import { installWorkerRole, rejectsWith, workerPassword, workerUrl, worldDatabase } from './support/packet-world.ts';
import { eventually, type RunningWorker, startAdmissionWorker, temporalClient, uniqueTaskQueue } from './support/temporal.ts';

const HANDOFF_STEP = 18;
const steps = packetSteps().map((s) => s.meta.step);
const lastStep = Math.max(...steps);
/** The step the handoff's rollback returns to (step 17 or whatever sits below 18 today). */
const belowHandoff = Math.max(...steps.filter((s) => s < HANDOFF_STEP));

type Q = Pick<pg.Pool | pg.Client, 'query'>;

const changelogIds = async (q: Q): Promise<number[]> =>
  (await q.query<{ id: string }>('SELECT id FROM registry_changelog ORDER BY id')).rows.map((r) => Number(r.id));

/** How often each changelog id was handed off, over the whole batch history. */
async function handedOffCounts(q: Q): Promise<Map<number, number>> {
  const r = await q.query<{ id: string; n: string }>(
    `SELECT i AS id, count(*) AS n FROM birth_handoff_batch b, unnest(b.ids) AS i WHERE b.source = 'registry_changelog' GROUP BY i`);
  return new Map(r.rows.map((x) => [Number(x.id), Number(x.n)]));
}

async function changelogRow(q: Q, tag: string): Promise<number> {
  const r = await q.query<{ id: string }>(
    `INSERT INTO registry_changelog (table_name, entity_code, operation, actor) VALUES ('dot_tools', $1, 'UPDATE', 'handoff-test') RETURNING id`, [tag]);
  return Number(r.rows[0]!.id);
}

/** Everything a handoff batch can write; equal before and after = it added nothing. */
async function handoffWrites(q: Q): Promise<unknown> {
  const r = await q.query<{ s: unknown }>(`SELECT jsonb_build_object(
      'batches', (SELECT count(*) FROM birth_handoff_batch),
      'cursor', (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.source) FROM birth_handoff_cursor c),
      'gaps', (SELECT coalesce(jsonb_agg(to_jsonb(g) ORDER BY g.gap_id), '[]') FROM birth_handoff_gap g),
      'candidates', (SELECT count(*) FROM governance_candidate_state),
      'candidates_updated', (SELECT max(updated_at) FROM governance_candidate_state),
      'events', (SELECT count(*) FROM event_pending),
      'emitted', (SELECT count(*) FROM event_pending WHERE status = 'emitted')) AS s`);
  return r.rows[0]!.s;
}

/** workers/main.ts as a child process: the production worker, killed from outside. */
function workerProcess(url: string, taskQueue: string): { child: ChildProcess; exited: Promise<string | null>; output: () => string } {
  const env = testEnv();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'main.ts')], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test',
      BIRTHGATE_WORKER_DATABASE_URL: url, TEMPORAL_ADDRESS: env.temporalAddress, TEMPORAL_NAMESPACE: env.namespace,
      BIRTHGATE_TASK_QUEUE: taskQueue,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return { child, exited: new Promise((resolve) => child.once('exit', (_c, signal) => resolve(signal))), output: () => output };
}

describe('governance handoff', () => {
  let db: FreshDatabase;
  let database: string;
  let workerPool: Pool;
  let temporal: { client: Client; close(): Promise<void> };
  const workers: RunningWorker[] = [];
  const children: ChildProcess[] = [];
  const sessions: Session[] = [];

  before(async () => {
    db = await worldDatabase('handoff');
    db.pool.on('error', () => undefined);
    await applyStepsSql(db.pool, lastStep);
    await installWorkerRole(db.pool, workerPassword);
    database = (await db.pool.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
    workerPool = createPool(workerUrl(db.url), { max: 10, applicationName: 'test-handoff-worker' });
    temporal = await temporalClient();
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    for (const s of sessions) await s.end();
    if (db) await demoteDirectus(db.pool).catch(() => undefined);
    await workerPool?.end().catch(() => undefined);
    await temporal?.close();
    await db?.dispose();
  });

  test('every changelog row is handed off exactly once across a worker killed mid-batch (its batch committing unreported), a late commit and a rollback; a second run adds nothing', async () => {
    const taskQueue = uniqueTaskQueue('handoff-crash');
    // Grace 0: a gap is given up as soon as the horizon allows — the late writer must be protected by the horizon alone.
    await db.pool.query(`UPDATE birth_handoff_cursor SET gap_grace = interval '0' WHERE source = 'registry_changelog'`);
    const worldRows = (await changelogIds(db.pool)).length;
    assert.ok(worldRows >= 1_000, `the test world has its changelog (${worldRows} rows)`);

    // Out of order: A takes an id and holds its transaction open; C takes the next one and rolls back;
    // a steady writer commits later ids all along.
    const late = new pg.Client({ connectionString: db.url, application_name: 'test-late-writer' });
    late.on('error', () => undefined);
    await late.connect();
    await late.query('BEGIN');
    const idLate = await changelogRow(late, 'DOT-LATE');
    const rolledBack = new pg.Client({ connectionString: db.url });
    await rolledBack.connect();
    await rolledBack.query('BEGIN');
    const idRolledBack = await changelogRow(rolledBack, 'DOT-ROLLED-BACK');
    await rolledBack.query('ROLLBACK');
    await rolledBack.end();
    let writing = true;
    let written = 0;
    const steady = (async () => {
      while (writing) {
        await changelogRow(db.pool, `DOT-STEADY-${written}`);
        written += 1;
        await sleep(100);
      }
    })();

    try {
      const victim = workerProcess(workerUrl(db.url), taskQueue);
      children.push(victim.child);
      // Small batches as activity tasks and a short run: many batches, several runs (continue-as-new).
      const started = await ensureGovernanceHandoff(temporal.client, {
        taskQueue, database, batchSize: 25, batchesPerRun: 15, activities: 'remote', idleMinMs: 200, idleMaxMs: 1_000,
      });
      assert.equal(started.started, true);
      const again = await ensureGovernanceHandoff(temporal.client, { taskQueue, database });
      assert.deepEqual([again.started, again.workflowId], [false, started.workflowId], 'a second ensure attaches to the running tail');

      // Kill the worker in the middle of the world's rows, while a batch is in flight: hold the next batch
      // on a lock, SIGKILL, release.
      await eventually(async () => {
        const r = await db.pool.query<{ n: string }>(`SELECT rows_handed_off AS n FROM birth_handoff_cursor WHERE source = 'registry_changelog'`);
        return Number(r.rows[0]!.n) >= 200 ? true : undefined;
      }, 'the first worker hands rows off', 120_000);
      const pause = new pg.Client({ connectionString: db.url, application_name: 'test-pause' });
      await pause.connect();
      await pause.query('BEGIN');
      await pause.query('LOCK TABLE governance_candidate_state IN SHARE MODE');
      await eventually(async () => {
        const r = await db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
            AND wait_event_type = 'Lock' AND query LIKE '%fn_governance_handoff_batch%'`);
        return r.rowCount ? true : undefined;
      }, 'a batch waits on the held lock', 30_000);
      victim.child.kill('SIGKILL');
      assert.equal(await victim.exited, 'SIGKILL', victim.output());
      const atKill = Number((await db.pool.query<{ n: string }>(`SELECT rows_handed_off AS n FROM birth_handoff_cursor WHERE source = 'registry_changelog'`)).rows[0]!.n);
      await pause.query('COMMIT'); // the dead worker's batch goes on: it may commit with nobody to report it
      await pause.end();
      assert.ok(atKill >= 200 && atKill < worldRows, `killed in the middle: ${atKill} of the world's ${worldRows} rows handed off`);
      // No worker runs now, yet the cursor moves: the dead worker's batch committed after the kill, and its
      // activity never reported it. Its retry on the next worker must not hand those rows off again.
      await eventually(async () => {
        const r = await db.pool.query<{ n: string }>(`SELECT rows_handed_off AS n FROM birth_handoff_cursor WHERE source = 'registry_changelog'`);
        return Number(r.rows[0]!.n) > atKill ? true : undefined;
      }, 'the orphaned batch commits', 10_000);
      workers.push(await startAdmissionWorker({ taskQueue, pool: workerPool }));

      // The new worker's tail passes the open transaction's id: a gap, neither handed off nor given up
      // (grace 0: only the horizon protects it).
      await eventually(async () => {
        const r = await db.pool.query(`SELECT 1 FROM birth_handoff_gap WHERE source = 'registry_changelog' AND ids @> $1::bigint
            UNION ALL SELECT 1 FROM birth_handoff_batch WHERE source = 'registry_changelog' AND abandoned @> $1::bigint`, [idLate]);
        return r.rowCount ? true : undefined;
      }, 'the tail passes the uncommitted id', 60_000);
      await sleep(1_500); // a few more batches re-read the gap while the writer still holds it open
      assert.equal((await handedOffCounts(db.pool)).get(idLate), undefined);
      assert.equal((await db.pool.query(`SELECT 1 FROM birth_handoff_batch WHERE abandoned @> $1::bigint`, [idLate])).rowCount, 0);

      await late.query('COMMIT'); // the early id commits after the cursor passed it
      await sleep(1_000);
      writing = false;
      await steady;

      const all = await changelogIds(db.pool);
      await eventually(async () => {
        const counts = await handedOffCounts(db.pool);
        const gaps = await db.pool.query(`SELECT 1 FROM birth_handoff_gap WHERE source = 'registry_changelog'`);
        return all.every((id) => counts.has(id)) && gaps.rowCount === 0 ? true : undefined;
      }, 'every row handed off and every gap settled', 90_000);

      const counts = await handedOffCounts(db.pool);
      const twice = [...counts].filter(([, n]) => n !== 1);
      assert.deepEqual(twice, [], 'no row handed off twice');
      assert.deepEqual([...counts.keys()].sort((a, b) => a - b), all, 'exactly the rows of registry_changelog');
      assert.ok(all.length >= worldRows + written + 1, 'the world, the steady writer and the late row');

      // The late row came in a later batch than the one that saw it missing; the rolled-back id was given up.
      const lateBatches = await db.pool.query<{ opened: string; filled: string }>(`SELECT
          (SELECT min(batch_id) FROM birth_handoff_batch WHERE source = 'registry_changelog' AND gaps_opened @> $1::bigint) AS opened,
          (SELECT min(batch_id) FROM birth_handoff_batch WHERE source = 'registry_changelog' AND $1::bigint = ANY (ids)) AS filled`, [idLate]);
      assert.ok(Number(lateBatches.rows[0]!.filled) > Number(lateBatches.rows[0]!.opened), JSON.stringify(lateBatches.rows[0]));
      assert.equal(counts.get(idRolledBack), undefined);
      const abandoned = await db.pool.query(`SELECT 1 FROM birth_handoff_batch WHERE source = 'registry_changelog' AND abandoned @> $1::bigint`, [idRolledBack]);
      assert.equal(abandoned.rowCount, 1, 'the rolled-back id is recorded as given up, once');

      // Every candidate of the changelog is dirty, carrying its newest row.
      const missing = await db.pool.query(`
        SELECT c.table_name, c.entity_code, max(c.id) AS newest FROM registry_changelog c
         WHERE c.entity_code IS NOT NULL AND btrim(c.entity_code) <> ''
         GROUP BY 1, 2
        EXCEPT
        SELECT g.collection_name, g.entity_code, g.last_changelog_id FROM governance_candidate_state g WHERE g.dirty`);
      assert.deepEqual(missing.rows, []);

      const handle = temporal.client.workflow.getHandle(started.workflowId);
      await eventually(async () => ((await governanceHandoffState(temporal.client, taskQueue, database)).caughtUp ? true : undefined), 'the tail reports itself caught up');
      const state = await governanceHandoffState(temporal.client, taskQueue, database);
      assert.ok(state.totals.runs > 1, `the tail continued as new (${state.totals.runs} runs)`);
      await handle.terminate('test: the tail is done');

      // A second run adds nothing.
      const before = await handoffWrites(db.pool);
      const second = await catchUpGovernanceHandoff(temporal.client, { taskQueue, database });
      assert.equal(second.attached, false);
      assert.equal(second.state.totals.changelogRows + second.state.totals.births + second.state.totals.events, 0);
      assert.deepEqual(await handoffWrites(db.pool), before);
    } finally {
      writing = false;
      await steady.catch(() => undefined);
      await late.end().catch(() => undefined);
    }
  });

  test('OSPA = 0 captures handoff.object_born; a covering, non-revoked OSPA emits, and emits what was captured', async () => {
    const taskQueue = uniqueTaskQueue('handoff-ospa');
    workers.push(await startAdmissionWorker({ taskQueue, pool: workerPool }));
    const catchUp = () => catchUpGovernanceHandoff(temporal.client, { taskQueue, database });
    let n = 0;
    const birth = async (): Promise<{ code: string; birthId: number }> => {
      n += 1;
      const code = `sp-handoff-${process.pid}-${n}`;
      await db.pool.query(`INSERT INTO entity_species (code, name, _dot_origin) VALUES ($1, $1, 'handoff-test')`, [code]);
      const r = await db.pool.query<{ id: string }>(`SELECT id FROM birth_registry WHERE entity_code = $1 AND collection_name = 'entity_species'`, [code]);
      return { code, birthId: Number(r.rows[0]!.id) };
    };
    const events = async (births: { birthId: number }[]) =>
      (await db.pool.query<{ birth_id: number; status: string; emitted: boolean }>(
        `SELECT (payload ->> 'birth_id')::bigint::integer AS birth_id, status, emitted_at IS NOT NULL AS emitted FROM event_pending
          WHERE event_type = 'handoff.object_born' AND (payload ->> 'birth_id')::bigint = ANY ($1::bigint[]) ORDER BY id`,
        [births.map((b) => b.birthId)])).rows;
    const active = async () => (await db.pool.query<{ a: boolean }>(`SELECT active AS a FROM event_type_registry WHERE event_type = 'handoff.object_born'`)).rows[0]!.a;
    assert.equal(Number((await db.pool.query('SELECT count(*) AS n FROM governance_build_authorization')).rows[0].n), 0, 'OSPA = 0 as found');

    const first = [await birth(), await birth()];
    assert.equal((await catchUp()).state.mode, 'capture');
    assert.deepEqual(await events(first), first.map((b) => ({ birth_id: b.birthId, status: 'captured', emitted: false })));
    assert.equal(await active(), false);
    const cand = await db.pool.query(`SELECT entity_code FROM governance_candidate_state
       WHERE collection_name = 'entity_species' AND dirty AND (entity_code, last_birth_id) IN (SELECT $1::text, $2::bigint UNION ALL SELECT $3::text, $4::bigint)`,
      [first[0]!.code, first[0]!.birthId, first[1]!.code, first[1]!.birthId]);
    assert.equal(cand.rowCount, 2, 'each birth marks its candidate dirty with its birth id');

    // Authorisations that do not cover the handoff, or no longer hold, change nothing.
    await db.pool.query(`INSERT INTO governance_build_authorization (scope, authorized_by, approval_ref, revoked_at) VALUES
      ('billing', 'gov-owner', 'OSPA-X', NULL), ('governance', 'gov-owner', 'OSPA-OLD', now() - interval '1 hour')`);
    const second = [await birth()];
    assert.equal((await catchUp()).state.mode, 'capture');
    assert.deepEqual((await events([...first, ...second])).map((e) => e.status), ['captured', 'captured', 'captured']);

    await db.pool.query(`INSERT INTO governance_build_authorization (scope, authorized_by, approval_ref) VALUES ('handoff.object_born', 'gov-owner', 'OSPA-1')`);
    const third = [await birth()];
    const emitted = await catchUp();
    assert.equal(emitted.state.mode, 'emit');
    assert.deepEqual(await events([...first, ...second, ...third]),
      [...first, ...second, ...third].map((b) => ({ birth_id: b.birthId, status: 'emitted', emitted: true })), 'one event per birth, every one emitted');
    assert.equal(await active(), true, 'OSPA activated the event type');
    const log = await db.pool.query<{ mode: string; events: number; emitted: number }>(
      `SELECT mode, events, emitted FROM birth_handoff_batch WHERE source = 'birth_registry' ORDER BY batch_id`);
    assert.deepEqual(log.rows.map((r) => [r.mode, r.events, r.emitted]), [['capture', 2, 0], ['capture', 1, 0], ['emit', 1, 3]]);
    await db.pool.query(`UPDATE governance_build_authorization SET revoked_at = now() WHERE revoked_at IS NULL`);
  });

  test('a trigger the estate owner plants on a governance table never runs with birthgate_owner\'s rights: the batch refuses, the tail waits blocked, then resumes', async () => {
    const directus = await asDirectus(db.url);
    const worker = await asWorker(db.url);
    sessions.push(directus, worker);
    await db.pool.query('GRANT CREATE ON SCHEMA public TO directus');
    try {
      await directus.c.query(`CREATE FUNCTION public.bg_handoff_attack() RETURNS trigger LANGUAGE plpgsql AS $f$ ${payloadBody('handoff')} RETURN NULL; END $f$`);
      const id = await changelogRow(db.pool, 'DOT-WHILE-PLANTED');
      for (const [table, trigger] of [
        ['governance_candidate_state', 'CREATE TRIGGER aaa_bg_attack BEFORE INSERT OR UPDATE ON governance_candidate_state FOR EACH ROW EXECUTE FUNCTION public.bg_handoff_attack()'],
        ['event_pending', 'CREATE TRIGGER aaa_bg_attack BEFORE INSERT ON event_pending FOR EACH STATEMENT EXECUTE FUNCTION public.bg_handoff_attack()'],
      ] as const) {
        await directus.c.query(trigger);
        const before = await handoffWrites(db.pool);
        await rejectsWith(worker.c.query(`SELECT fn_governance_handoff_batch($1, 100, 'attack-test')`, [database]), 'BG403',
          new RegExp(`refuses to write public\\.${table}: a trigger runs a function of an untrusted owner`));
        assert.deepEqual(await handoffWrites(db.pool), before, `nothing written while ${table} carries the trigger`);
        await directus.c.query(`DROP TRIGGER aaa_bg_attack ON ${table}`);
      }
      assert.deepEqual(attackNotices(worker), [], 'the planted function never ran');
      assert.equal(await isSuperuser(db.pool, 'directus'), false);

      // The workflow under the refusal: blocked, then on its way again once the table is restored.
      await directus.c.query('CREATE TRIGGER aaa_bg_attack BEFORE INSERT OR UPDATE ON governance_candidate_state FOR EACH ROW EXECUTE FUNCTION public.bg_handoff_attack()');
      const taskQueue = uniqueTaskQueue('handoff-refused');
      workers.push(await startAdmissionWorker({ taskQueue, pool: workerPool }));
      const tail = await ensureGovernanceHandoff(temporal.client, { taskQueue, database, idleMinMs: 200, idleMaxMs: 1_000 });
      await eventually(async () => {
        const s = await governanceHandoffState(temporal.client, taskQueue, database);
        return s.blocked?.startsWith('GATE_REFUSED') ? s : undefined;
      }, 'the tail shows the refusal');
      assert.equal((await handedOffCounts(db.pool)).get(id), undefined);
      await directus.c.query('DROP TRIGGER aaa_bg_attack ON governance_candidate_state');
      await temporal.client.workflow.getHandle(tail.workflowId).signal(wakeHandoffSignal);
      await eventually(async () => ((await handedOffCounts(db.pool)).get(id) === 1 ? true : undefined), 'the tail resumes');
      assert.equal((await governanceHandoffState(temporal.client, taskQueue, database)).blocked, null);
      await temporal.client.workflow.getHandle(tail.workflowId).terminate('test done');
      assert.deepEqual(attackNotices(worker), []);
      assert.equal(await isSuperuser(db.pool, 'directus'), false);
    } finally {
      await directus.c.query('DROP TRIGGER IF EXISTS aaa_bg_attack ON governance_candidate_state').catch(() => undefined);
      await directus.c.query('DROP TRIGGER IF EXISTS aaa_bg_attack ON event_pending').catch(() => undefined);
      await directus.c.query('DROP FUNCTION IF EXISTS public.bg_handoff_attack()').catch(() => undefined);
      await db.pool.query('REVOKE CREATE ON SCHEMA public FROM directus');
    }
  });

  test('refusals, each as the role that attempts it: the worker writes no cursor and calls no internal function, the estate owner cannot touch the cursor, another database and a caching sequence are refused', async () => {
    const directus = await asDirectus(db.url);
    const worker = await asWorker(db.url);
    sessions.push(directus, worker);
    const before = await handoffWrites(db.pool);
    await rejectsWith(worker.c.query(`UPDATE birth_handoff_cursor SET last_id = last_id + 100`), '42501');
    await rejectsWith(worker.c.query(`DELETE FROM birth_handoff_gap`), '42501');
    await rejectsWith(worker.c.query(`INSERT INTO governance_candidate_state (entity_code, collection_name) VALUES ('x', 'y')`), '42501');
    await rejectsWith(worker.c.query(`SELECT fn_handoff_changelog(10, true, 'w', now())`), '42501');
    await rejectsWith(worker.c.query(`SELECT fn_handoff_estate_check('{}'::regclass[], ARRAY['public.event_pending']::regclass[])`), '42501');
    await rejectsWith(directus.c.query(`UPDATE birth_handoff_cursor SET last_id = 0`), '42501');
    await rejectsWith(directus.c.query(`SELECT fn_governance_handoff_batch(current_database(), 10, 'directus')`), '42501');
    await rejectsWith(worker.c.query(`SELECT fn_governance_handoff_batch('another_estate', 10, 'w')`), 'BG400', /serves database another_estate/);
    await rejectsWith(worker.c.query(`SELECT fn_governance_handoff_batch(current_database(), 0, 'w')`), 'BG400');
    await directus.c.query('ALTER SEQUENCE registry_changelog_id_seq CACHE 20');
    try {
      await rejectsWith(worker.c.query(`SELECT fn_governance_handoff_batch(current_database(), 10, 'w')`), 'BG428', /caches 20 values/);
    } finally {
      await directus.c.query('ALTER SEQUENCE registry_changelog_id_seq CACHE 1');
    }
    assert.deepEqual(await handoffWrites(db.pool), before, 'nothing written by any refused attempt');
  });

  test('a batch held open holds no lock a birth needs: a birth commits meanwhile', async () => {
    await changelogRow(db.pool, 'DOT-HELD'); // something to hand off, so the batch really writes
    const held = new pg.Client({ connectionString: db.url, application_name: 'test-held-batch' });
    await held.connect();
    try {
      await held.query('BEGIN');
      const r = await held.query<{ r: { changelog: { handed_off: number } }; pid: number }>(
        `SELECT fn_governance_handoff_batch(current_database(), 1000, 'held') AS r, pg_backend_pid() AS pid`);
      assert.ok(r.rows[0]!.r.changelog.handed_off >= 1);
      const locks = await db.pool.query<{ rel: string; mode: string }>(`SELECT c.relname AS rel, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE l.pid = $1 AND c.relname IN ('birth_registry', 'dot_tools', 'registry_changelog', 'meta_catalog') ORDER BY 1, 2`, [r.rows[0]!.pid]);
      assert.deepEqual([...new Set(locks.rows.map((l) => l.mode))], ['AccessShareLock'], JSON.stringify(locks.rows));
      assert.equal(locks.rows.some((l) => l.rel === 'dot_tools'), false);
      const birth = new pg.Client({ connectionString: db.url, application_name: 'test-birth' });
      await birth.connect();
      try {
        await birth.query(`SET lock_timeout = '2s'`);
        const code = `sp-held-${process.pid}`;
        await birth.query(`INSERT INTO entity_species (code, name) VALUES ($1, $1)`, [code]);
        const born = await db.pool.query(`SELECT 1 FROM birth_registry WHERE entity_code = $1 AND status = 'born'`, [code]);
        assert.equal(born.rowCount, 1, 'born while the batch is open');
      } finally {
        await birth.end();
      }
    } finally {
      await held.query('ROLLBACK').catch(() => undefined);
      await held.end();
    }
  });

  test('caught up, the tail waits on a durable timer that doubles up to its cap, and a wake signal cuts the wait short', async () => {
    const taskQueue = uniqueTaskQueue('handoff-idle');
    workers.push(await startAdmissionWorker({ taskQueue, pool: workerPool }));
    const tail = await ensureGovernanceHandoff(temporal.client, { taskQueue, database, idleMinMs: 200, idleMaxMs: 120_000 });
    const handle = temporal.client.workflow.getHandle(tail.workflowId);
    const { EventType } = proto.temporal.api.enums.v1;
    const events = async () => (await handle.fetchHistory()).events ?? [];
    const timers = async (): Promise<number[]> =>
      (await events())
        .filter((e) => e.eventType === EventType.EVENT_TYPE_TIMER_STARTED)
        .map((e) => {
          const d = e.timerStartedEventAttributes!.startToFireTimeout!;
          return Number(d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6);
        });
    await eventually(async () => ((await timers()).length >= 5 ? true : undefined), 'five waits');
    const waits = await timers();
    assert.deepEqual(waits.slice(0, 5), [200, 400, 800, 1600, 3200], 'each empty batch doubles the wait');
    const batches = (await events()).filter((e) => e.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
      || e.eventType === EventType.EVENT_TYPE_MARKER_RECORDED).length;
    assert.ok(batches <= waits.length + 1, `no busy polling: one batch per wait (${batches} batches, ${waits.length} waits)`);

    // A new row and a wake: the wait in progress is cut short (its timer cancelled), the row handed off.
    const id = await changelogRow(db.pool, 'DOT-WAKE');
    await handle.signal(wakeHandoffSignal);
    await eventually(async () => ((await handedOffCounts(db.pool)).get(id) === 1 ? true : undefined), 'the woken tail hands the row off');
    await eventually(async () => ((await events()).some((e) => e.eventType === EventType.EVENT_TYPE_TIMER_CANCELED) ? true : undefined),
      'the wake cancelled the wait\'s timer');
    await handle.terminate('test done');
  });

  test(`step ${HANDOFF_STEP} rolls back to the entry fingerprint; its cursor and batch history move to an archive schema`, async () => {
    const rdb = await worldDatabase('handoff_rollback');
    try {
      await applyStepsSql(rdb.pool, belowHandoff);
      const entry = await catalogFingerprint(rdb.pool);
      assert.equal((await verifyStep(rdb.pool, HANDOFF_STEP)).ok, false);
      for (const k of steps.filter((s) => s >= HANDOFF_STEP)) await applyStep(rdb.pool, k);
      assert.equal((await verifyStep(rdb.pool, HANDOFF_STEP)).ok, true);
      const r = await rdb.pool.query<{ r: { changelog: { handed_off: number } } }>(`SELECT fn_governance_handoff_batch(current_database(), 500, 'rollback-test') AS r`);
      assert.equal(r.rows[0]!.r.changelog.handed_off, 500);
      assert.notDeepEqual(await catalogFingerprint(rdb.pool), entry);

      await rollbackStepsSql(rdb.pool, belowHandoff);
      assert.deepEqual(await catalogFingerprint(rdb.pool), entry);
      assert.equal((await verifyStep(rdb.pool, HANDOFF_STEP)).ok, false);
      const archived = await rdb.pool.query<{ schema: string; owner: string }>(`SELECT n.nspname AS schema, pg_get_userbyid(n.nspowner) AS owner
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'birth_handoff_batch'`);
      assert.equal(archived.rowCount, 1);
      assert.match(archived.rows[0]!.schema, /^birthgate_archive_\d{8}_\d{6}_\d+$/);
      assert.equal(archived.rows[0]!.owner, 'birthgate_owner');
      const kept = await rdb.pool.query(`SELECT cardinality(ids) AS n FROM ${pg.escapeIdentifier(archived.rows[0]!.schema)}.birth_handoff_batch`);
      assert.deepEqual(kept.rows, [{ n: 500 }], 'the history is kept');
      const cursor = await rdb.pool.query(`SELECT last_id FROM ${pg.escapeIdentifier(archived.rows[0]!.schema)}.birth_handoff_cursor WHERE source = 'registry_changelog'`);
      assert.equal(Number(cursor.rows[0].last_id), 500);

      // Applied again, it starts a fresh tail.
      for (const k of steps.filter((s) => s >= HANDOFF_STEP)) await applyStep(rdb.pool, k);
      const fresh = await rdb.pool.query(`SELECT last_id FROM birth_handoff_cursor WHERE source = 'registry_changelog'`);
      assert.equal(Number(fresh.rows[0].last_id), 0);
    } finally {
      await rdb.dispose();
    }
  });
});
