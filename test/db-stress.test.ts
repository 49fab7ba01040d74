// Issue 8 §4, the database path under stress: the worker role's own session bounds, the pool's,
// activity cancellation reaching the backend, the atomic withdraw, refusals that never retry, and a
// preflight that knows a code is already born. Real PostgreSQL 16 throughout; the activities run in
// Temporal's MockActivityEnvironment (a real activity context: cancellation, heartbeats, info).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { createActivities, type AdmissionActivities } from '../activities/index.ts';
import { toFailure } from '../activities/failures.ts';
import { FailureType } from '../contracts/admission.ts';
import { createPool, POOL_CONNECT_TIMEOUT_MS } from '../db/pool.ts';
import type { FreshDatabase } from './support/db.ts';
import { applyStepsSql } from './support/packet-sql.ts';
import {
  admissionState, installWorkerRole, issuePermit, newDotCode, rejectsWith, workerUrl, worldDatabase,
} from './support/packet-world.ts';

const APP = 'test-db-stress-worker';

/** An activity attempt as the worker runs it: attempt 1, the admission's 10 s start-to-close unless told. */
function attempt(info: { startToCloseTimeoutMs?: number } = {}) {
  const env = new MockActivityEnvironment({ attempt: 1, startToCloseTimeoutMs: info.startToCloseTimeoutMs ?? 10_000, isLocal: false });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  return { env, heartbeats };
}

/** What a rejected activity call failed with (it must fail). */
async function failureOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected the activity to fail, but it succeeded');
}

/** The worker's backends in this database that are running (or waiting in) a statement. */
async function workerStatements(q: Pick<pg.Pool, 'query'>, like: string) {
  const r = await q.query<{ pid: number; state: string; wait_event_type: string | null; query: string }>(
    `SELECT pid, state, wait_event_type, query FROM pg_stat_activity
      WHERE datname = current_database() AND usename = 'birthgate_worker' AND application_name = $1
        AND state = 'active' AND query LIKE $2`, [APP, `%${like}%`]);
  return r.rows;
}

/** Worker statements still active after up to a second: a backend leaves 'active' a moment after its client has the error. */
async function settledWorkerStatements(q: Pick<pg.Pool, 'query'>, like: string) {
  let rows = await workerStatements(q, like);
  for (const until = Date.now() + 1_000; rows.length > 0 && Date.now() < until; await sleep(20)) rows = await workerStatements(q, like);
  return rows;
}

/** Wait until a worker statement like `like` is blocked on a lock; returns its pid. */
async function blockedOnLock(q: Pick<pg.Pool, 'query'>, like: string): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const rows = (await workerStatements(q, like)).filter((r) => r.wait_event_type === 'Lock');
    if (rows.length === 1) return rows[0]!.pid;
    await sleep(10);
  }
  assert.fail(`no worker statement like ${like} waiting on a lock`);
}

/** A superuser session holding a lock until released (ROLLBACK). */
async function holdLock(url: string, sql: string, params: unknown[] = []): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url, application_name: 'test-db-stress-holder' });
  c.on('error', () => undefined);
  await c.connect();
  await c.query('BEGIN');
  await c.query(sql, params);
  return {
    async release() {
      await c.query('ROLLBACK');
      await c.end();
    },
  };
}

async function permitState(q: Pick<pg.Pool, 'query'>, permitId: string): Promise<string> {
  return (await q.query<{ state: string }>('SELECT state FROM birth_admission_permit WHERE permit_id = $1', [permitId])).rows[0]!.state;
}

async function rowsOf(q: Pick<pg.Pool, 'query'>, code: string): Promise<number> {
  return (await q.query<{ n: number }>('SELECT count(*)::int AS n FROM dot_tools WHERE code = $1', [code])).rows[0]!.n;
}

/** Admit `code` the way the worker does (permit, insert, commit); returns the permit id. */
async function admitted(db: FreshDatabase, acts: AdmissionActivities, code: string): Promise<string> {
  const permitId = await issuePermit(db.pool, code);
  await acts.insertGovernedRow({ permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null });
  assert.equal(await permitState(db.pool, permitId), 'FINALIZED');
  return permitId;
}

describe('the database path under stress (issue 8 §4)', () => {
  let db: FreshDatabase;
  let worker: pg.Pool;
  let acts: AdmissionActivities;

  before(async () => {
    db = await worldDatabase('db_stress');
    await applyStepsSql(db.pool, 99);
    await installWorkerRole(db.pool);
    worker = createPool(workerUrl(db.url), { max: 6, applicationName: APP });
    acts = createActivities({ pool: worker });
  });
  after(async () => {
    await worker?.end();
    await db?.dispose();
  });

  describe('the worker role bounds its own sessions', { concurrency: true }, () => {
    test('as the worker: lock_timeout 3s, statement_timeout 8s, idle_in_transaction_session_timeout 5s', async () => {
      const c = await worker.connect();
      try {
        const show = async (name: string) => (await c.query(`SHOW ${name}`)).rows[0][name];
        assert.deepEqual(
          [await show('lock_timeout'), await show('statement_timeout'), await show('idle_in_transaction_session_timeout')],
          ['3s', '8s', '5s']);
      } finally {
        c.release();
      }
      // Role-wide (the role is cluster-global), and nothing per database that DROP DATABASE would race on.
      const r = await db.pool.query<{ everywhere: string[] | null; here: string[] | null }>(`
        SELECT (SELECT setconfig FROM pg_db_role_setting s
                 WHERE s.setdatabase = 0 AND s.setrole = 'birthgate_worker'::regrole) AS everywhere,
               (SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                 WHERE d.datname = current_database() AND s.setrole = 'birthgate_worker'::regrole) AS here`);
      assert.deepEqual([...(r.rows[0]!.everywhere ?? [])].sort(),
        ['idle_in_transaction_session_timeout=5s', 'lock_timeout=3s', 'statement_timeout=8s']);
      assert.equal(r.rows[0]!.here, null);
    });

    test('a hung insert (another session holds the permit row) ends by lock_timeout, commits nothing, and can be retried', async () => {
      const code = newDotCode('stress-permit-lock');
      const permitId = await issuePermit(db.pool, code);
      const holder = await holdLock(db.url, 'SELECT 1 FROM birth_admission_permit WHERE permit_id = $1 FOR UPDATE', [permitId]);
      const t0 = Date.now();
      let err: unknown;
      try {
        const { env } = attempt();
        err = await failureOf(env.run(acts.insertGovernedRow, { permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null }));
      } finally {
        await holder.release();
      }
      const waited = Date.now() - t0;
      assert.ok(waited >= 2_500 && waited < 6_000, `ended by the 3 s lock_timeout (${waited} ms)`);
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, FailureType.DATABASE_UNAVAILABLE);
      assert.equal(err.nonRetryable, false, 'a lock timeout is worth a retry');
      assert.match(err.message, /lock timeout/);
      assert.equal(await permitState(db.pool, permitId), 'RESERVED');
      assert.equal(await rowsOf(db.pool, code), 0);
      // The retry, once the lock is gone, admits.
      const row = await acts.insertGovernedRow({ permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null });
      assert.ok(row.rowId);
      assert.equal(await permitState(db.pool, permitId), 'FINALIZED');
    });

    test('a worker statement running past 8 s is cancelled by statement_timeout', async () => {
      const t0 = Date.now();
      await rejectsWith(worker.query('SELECT pg_sleep(30)'), '57014', /statement timeout/);
      const ran = Date.now() - t0;
      assert.ok(ran >= 7_500 && ran < 12_000, `cancelled at 8 s (${ran} ms)`);
    });

    test('a worker that stalls inside its insert transaction is terminated after 5 s: the insert rolls back, the permit is free', async () => {
      const code = newDotCode('stress-idle-tx');
      const permitId = await issuePermit(db.pool, code);
      const c = new pg.Client({ connectionString: workerUrl(db.url), application_name: APP });
      c.on('error', () => undefined);
      await c.connect();
      const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      await c.query('BEGIN');
      await c.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [permitId]);
      await sleep(6_500); // the stalled worker (GC pause, partition, SIGSTOP)
      const gone = await db.pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1`, [pid]);
      assert.equal(gone.rows[0]!.n, 0, 'the server ended the session');
      await assert.rejects(c.query('COMMIT'), /idle-in-transaction timeout|terminat|not queryable/i);
      await c.end().catch(() => undefined);
      assert.equal(await permitState(db.pool, permitId), 'RESERVED');
      assert.equal(await rowsOf(db.pool, code), 0);
      const undone = await acts.withdrawPermit({ permitId, to: 'FAILED', actor: 'test', reason: 'attempt timed out' });
      assert.equal(undone.action, 'done');
    });

    test('the pool: a caller waiting for a connection gives up after 5 s (retryable), and a server-ended idle connection is only dropped', async () => {
      const small = createPool(workerUrl(db.url), { max: 1, applicationName: `${APP}-small` });
      try {
        const held = await small.connect();
        const pid = (await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        const t0 = Date.now();
        const err = await failureOf(small.query('SELECT 1'));
        const waited = Date.now() - t0;
        assert.ok(waited >= POOL_CONNECT_TIMEOUT_MS - 200 && waited < POOL_CONNECT_TIMEOUT_MS + 2_000, `${waited} ms`);
        const f = toFailure(err, 'checkout');
        assert.ok(f instanceof ApplicationFailure && f.type === FailureType.DATABASE_UNAVAILABLE && !f.nonRetryable, String(f));
        held.release();
        // The server ends the idle connection: the pool drops it (no crash) and connects afresh.
        await db.pool.query('SELECT pg_terminate_backend($1)', [pid]);
        await sleep(200);
        const again = await small.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        assert.notEqual(again.rows[0]!.pid, pid);
      } finally {
        await small.end();
      }
    });
  });

  describe('activity cancellation reaches the backend', () => {
    test('a hung insert (dot_tools locked) holding the permit ends by lock_timeout; the withdraw after it wins; nothing commits later', async () => {
      const code = newDotCode('stress-table-lock');
      const permitId = await issuePermit(db.pool, code);
      const holder = await holdLock(db.url, 'LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE');
      try {
        const { env } = attempt();
        const err = await failureOf(env.run(acts.insertGovernedRow, { permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null }));
        assert.ok(err instanceof ApplicationFailure && err.type === FailureType.DATABASE_UNAVAILABLE, String(err));
        // The compensation runs while the table is still locked: the insert's transaction is gone, so
        // the permit is free and the withdraw is one move.
        const undone = await acts.withdrawPermit({ permitId, to: 'CANCELLED', actor: 'test', reason: 'temporal gave up' });
        assert.deepEqual(undone.action, 'done');
      } finally {
        await holder.release();
      }
      assert.equal(await permitState(db.pool, permitId), 'CANCELLED');
      assert.equal(await rowsOf(db.pool, code), 0);
      assert.deepEqual(await settledWorkerStatements(db.pool, 'fn_admission_insert_dot_tools'), []);
    });

    test('cancelled while its insert waits on a lock: the backend is cancelled, the statement is gone, nothing commits', async () => {
      const code = newDotCode('stress-cancel');
      const permitId = await issuePermit(db.pool, code);
      const before = await admissionState(db.pool);
      const holder = await holdLock(db.url, 'LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE');
      const { env, heartbeats } = attempt();
      const t0 = Date.now();
      const running = failureOf(env.run(acts.insertGovernedRow, { permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null }));
      let err: unknown;
      try {
        const pid = await blockedOnLock(db.pool, 'fn_admission_insert_dot_tools');
        await sleep(1_300); // long enough for a heartbeat, well before the 3 s lock_timeout
        env.cancel('CANCELLED');
        err = await running;
        const took = Date.now() - t0;
        assert.ok(took < 2_600, `ended by the cancel, not by lock_timeout (${took} ms)`);
        // The backend is no longer running it (idle, back in the pool), while the lock is still held. The
        // client has its error as soon as the server sends it; the backend reports idle once it has
        // aborted the statement's transaction, a moment later: asked for up to a second.
        let r: { rows: { state: string; wait_event_type: string | null }[] } = { rows: [] };
        for (const until = Date.now() + 1_000; ; await sleep(20)) {
          r = await db.pool.query<{ state: string; wait_event_type: string | null }>(
            'SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid]);
          if (r.rows.length === 0 || r.rows[0]!.state === 'idle' || Date.now() > until) break;
        }
        assert.ok(r.rows.length === 0 || r.rows[0]!.state === 'idle', JSON.stringify(r.rows));
        assert.deepEqual(await settledWorkerStatements(db.pool, 'fn_admission_insert_dot_tools'), []);
        const waiting = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND relation = 'dot_tools'::regclass`);
        assert.equal(waiting.rows[0]!.n, 0);
      } finally {
        await holder.release();
      }
      assert.ok(err instanceof CancelledFailure, `a cancelled activity reports cancellation: ${String(err)}`);
      assert.ok(heartbeats.length >= 1, 'it heartbeats while the statement runs (how a remote activity learns of a cancel)');
      // The lock is gone now; nothing was left to commit.
      await sleep(100);
      assert.deepEqual(await admissionState(db.pool), before);
      assert.equal(await rowsOf(db.pool, code), 0);
      assert.equal(await permitState(db.pool, permitId), 'RESERVED');
      // The compensation then withdraws, and a later insert under the permit is refused.
      assert.equal((await acts.withdrawPermit({ permitId, to: 'CANCELLED', actor: 'test', reason: 'workflow cancelled' })).action, 'done');
      await rejectsWith(worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [permitId]), 'BG403');
    });

    test('an attempt whose start-to-close is running out cancels its own backend (retryable), before the lock_timeout', async () => {
      const code = newDotCode('stress-deadline');
      const permitId = await issuePermit(db.pool, code);
      const holder = await holdLock(db.url, 'SELECT 1 FROM birth_admission_permit WHERE permit_id = $1 FOR UPDATE', [permitId]);
      const { env } = attempt({ startToCloseTimeoutMs: 2_000 });
      const t0 = Date.now();
      let err: unknown;
      try {
        err = await failureOf(env.run(acts.insertGovernedRow, { permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null }));
      } finally {
        await holder.release();
      }
      const took = Date.now() - t0;
      assert.ok(took >= 1_500 && took < 2_500, `cancelled before the attempt's 2 s ran out (${took} ms)`);
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, FailureType.DATABASE_UNAVAILABLE);
      assert.equal(err.nonRetryable, false);
      assert.match(err.message, /before its start-to-close \(2000 ms\) ran out/);
      assert.equal(await permitState(db.pool, permitId), 'RESERVED');
      assert.equal(await rowsOf(db.pool, code), 0);
    });

    test('a cancelled preflight cancels its backend too', async () => {
      const code = newDotCode('stress-preflight');
      // The preflight's first read is meta_catalog: hold it.
      const holder = await holdLock(db.url, 'LOCK TABLE meta_catalog IN ACCESS EXCLUSIVE MODE');
      const { env } = attempt();
      const t0 = Date.now();
      const running = failureOf(env.run(acts.preflight, { collection: 'dot_tools', code }));
      let err: unknown;
      try {
        await blockedOnLock(db.pool, 'fn_admission_preflight');
        env.cancel('CANCELLED');
        err = await running;
        assert.ok(Date.now() - t0 < 2_500);
        assert.deepEqual(await settledWorkerStatements(db.pool, 'fn_admission_preflight'), []);
      } finally {
        await holder.release();
      }
      assert.ok(err instanceof CancelledFailure, String(err));
    });

    test('a preflight waiting on a lock longer than lock_timeout just waits: no "not computed" blocker, the guard stays clean', async () => {
      const holder = await holdLock(db.url, 'LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE');
      const t0 = Date.now();
      const running = acts.preflight({ collection: 'dot_tools', code: newDotCode('stress-preflight-wait') });
      try {
        await blockedOnLock(db.pool, 'fn_admission_preflight');
        await sleep(3_500);
      } finally {
        await holder.release();
      }
      const report = await running;
      assert.ok(Date.now() - t0 >= 3_500);
      assert.deepEqual(report.blockers, []);
      const guard = await db.pool.query<{ findings: number }>('SELECT findings FROM birth_admission_guard');
      assert.equal(guard.rows[0]!.findings, 0);
    });

    test('outside an activity the guard stays out of the way', async () => {
      const code = newDotCode('stress-plain');
      const permitId = await issuePermit(db.pool, code);
      const row = await acts.insertGovernedRow({ permitId, collection: 'dot_tools', code, fields: {}, breakGlass: null });
      assert.ok(row.rowId);
      const report = await acts.preflight({ collection: 'dot_tools', code: newDotCode('stress-plain-pf') });
      assert.deepEqual(report.blockers, []);
    });
  });

  describe('refusals that can never succeed are not retried', () => {
    test('a duplicate dot_tools.code fails non-retryable on the first attempt, and writes nothing', async () => {
      const code = newDotCode('stress-dup');
      await admitted(db, acts, code);
      // A second permit for the same code (the first is FINALIZED, so uq_permit_active lets it be).
      const second = await issuePermit(db.pool, code, { key: `wf:dup:${code}:2` });
      const before = await admissionState(db.pool);
      const { env } = attempt();
      const t0 = Date.now();
      const err = await failureOf(env.run(acts.insertGovernedRow, { permitId: second, collection: 'dot_tools', code, fields: {}, breakGlass: null }));
      assert.ok(Date.now() - t0 < 2_000, 'fails at once');
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, FailureType.CONSTRAINT_VIOLATION);
      assert.equal(err.nonRetryable, true);
      assert.deepEqual(err.details, [{ sqlState: '23505' }]);
      assert.deepEqual(await admissionState(db.pool), before);
      assert.equal(await permitState(db.pool, second), 'RESERVED');
      assert.equal(await rowsOf(db.pool, code), 1);
    });

    test('a value out of range (class 22, not named in the contract) is refused the same way', async () => {
      const code = newDotCode('stress-range');
      const permitId = await issuePermit(db.pool, code);
      const { env } = attempt();
      const err = await failureOf(env.run(acts.insertGovernedRow, {
        permitId, collection: 'dot_tools', code, fields: { run_count: 1e12 }, breakGlass: null,
      }));
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, FailureType.INVALID_INPUT);
      assert.equal(err.nonRetryable, true);
      assert.deepEqual(err.details, [{ sqlState: '22003' }]);
      assert.equal(await permitState(db.pool, permitId), 'RESERVED');
    });

    test('the SQLSTATE classes: 22 and 23 never retried; lock, statement, serialization and connection failures retried', () => {
      const of = (code: string) => {
        const f = toFailure(Object.assign(new Error(`sqlstate ${code}`), { code }), 'x');
        assert.ok(f instanceof ApplicationFailure);
        return [f.type, f.nonRetryable];
      };
      assert.deepEqual(of('23505'), [FailureType.CONSTRAINT_VIOLATION, true]);
      assert.deepEqual(of('23503'), [FailureType.CONSTRAINT_VIOLATION, true]);
      assert.deepEqual(of('23001'), [FailureType.CONSTRAINT_VIOLATION, true]);
      assert.deepEqual(of('23502'), [FailureType.INVALID_INPUT, true]);
      assert.deepEqual(of('22012'), [FailureType.INVALID_INPUT, true]);
      assert.deepEqual(of('22P02'), [FailureType.INVALID_INPUT, true]);
      for (const code of ['55P03', '57014', '40001', '40P01', '08006', '57P01']) {
        assert.deepEqual(of(code), [FailureType.DATABASE_UNAVAILABLE, false], code);
      }
      const cancelled = new CancelledFailure('CANCELLED');
      assert.equal(toFailure(cancelled, 'x'), cancelled, 'a cancellation leaves as the SDK made it');
    });
  });

  describe('fn_permit_withdraw: the withdraw is one atomic move', () => {
    const withdraw = (q: Pick<pg.Pool, 'query'>, id: string, to: string, reason: string | null = 'withdrawn') =>
      q.query<{ permit_id: string; state: string }>('SELECT permit_id, state FROM fn_permit_withdraw($1, $2, $3, $4)', [id, to, 'test-actor', reason]);
    const transitions = async (id: string) =>
      (await db.pool.query<{ f: string | null; t: string }>(
        'SELECT from_state AS f, to_state AS t FROM birth_admission_permit_transition WHERE permit_id = $1 ORDER BY transition_id', [id])).rows
        .map((r) => `${r.f ?? '∅'}→${r.t}`);

    test('REQUESTED → CANCELLED and RESERVED → FAILED, logged once; a repeat changes nothing', async () => {
      const code = newDotCode('withdraw-requested');
      const requested = (await db.pool.query<{ permit_id: string }>(
        'SELECT permit_id FROM fn_permit_request($1, $2, $3, $4, $5)', [`wf:req:${code}`, code, 'dot_tools', 300, 'test'])).rows[0]!.permit_id;
      assert.deepEqual((await withdraw(worker, requested, 'CANCELLED')).rows[0]!.state, 'CANCELLED');
      assert.deepEqual((await withdraw(worker, requested, 'CANCELLED')).rows[0]!.state, 'CANCELLED');
      assert.deepEqual(await transitions(requested), ['∅→REQUESTED', 'REQUESTED→CANCELLED']);

      const reserved = await issuePermit(db.pool, newDotCode('withdraw-reserved'));
      assert.deepEqual((await withdraw(worker, reserved, 'FAILED')).rows[0]!.state, 'FAILED');
      // Another state asked for later: returned unchanged, nothing logged.
      assert.deepEqual((await withdraw(worker, reserved, 'CANCELLED')).rows[0]!.state, 'FAILED');
      assert.deepEqual(await transitions(reserved), ['∅→REQUESTED', 'REQUESTED→RESERVED', 'RESERVED→FAILED']);
    });

    test('FINALIZED, EXPIRED, CANCELLED and FAILED come back unchanged', async () => {
      const finalized = await admitted(db, acts, newDotCode('withdraw-finalized'));
      const expired = await issuePermit(db.pool, newDotCode('withdraw-expired'));
      await db.pool.query(`UPDATE birth_admission_permit SET expires_at = now() - interval '1 minute' WHERE permit_id = $1`, [expired]);
      await db.pool.query(`SELECT fn_permit_expire_due('test-sweep')`);
      const before = await admissionState(db.pool);
      for (const [id, state] of [[finalized, 'FINALIZED'], [expired, 'EXPIRED']] as const) {
        for (const to of ['CANCELLED', 'FAILED']) {
          assert.equal((await withdraw(worker, id, to)).rows[0]!.state, state);
        }
      }
      assert.deepEqual(await admissionState(db.pool), before);
      // The activity goes one step further than the SQL move: a permit FINALIZED by a late commit means
      // the compensation must leave nothing written, so its row goes and its birth is retired.
      const done = await acts.withdrawPermit({ permitId: finalized, to: 'CANCELLED', actor: 'test', reason: 'late' });
      assert.equal(done.action, 'done');
      assert.match(done.detail, /FINALIZED by a late commit: row \d+ removed, birth \d+ retired/);
      assert.equal(await permitState(db.pool, finalized), 'FINALIZED');
    });

    test('bad input: BG400, nothing written', async () => {
      const id = await issuePermit(db.pool, newDotCode('withdraw-bad'));
      const before = await admissionState(db.pool);
      await rejectsWith(withdraw(worker, id, 'RESERVED'), 'BG400', /CANCELLED or FAILED/);
      await rejectsWith(withdraw(worker, id, 'EXPIRED'), 'BG400', /CANCELLED or FAILED/);
      await rejectsWith(withdraw(worker, id, 'CANCELLED', null), 'BG400', /reason must not be NULL/);
      await rejectsWith(withdraw(worker, id, 'CANCELLED', 'x'.repeat(2001)), 'BG400', /reason is too long/);
      await rejectsWith(withdraw(worker, '999999999', 'CANCELLED'), 'BG400', /does not exist/);
      await rejectsWith(worker.query('SELECT fn_permit_withdraw(NULL, $1, $2, $3)', ['CANCELLED', 'a', 'r']), 'BG400', /permit_id must not be NULL/);
      assert.deepEqual(await admissionState(db.pool), before);
      assert.equal(await permitState(db.pool, id), 'RESERVED');
    });

    test('SECURITY DEFINER, owned by birthgate_owner, search_path pinned; EXECUTE for the worker, not PUBLIC', async () => {
      const r = await db.pool.query(`
        SELECT p.proowner::regrole::text AS owner, p.prosecdef, p.proconfig,
               has_function_privilege('birthgate_worker', p.oid, 'EXECUTE') AS worker,
               has_function_privilege('birthgate_operator', p.oid, 'EXECUTE') AS operator,
               EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0) AS public
          FROM pg_proc p WHERE p.oid = 'public.fn_permit_withdraw(bigint,text,text,text)'::regprocedure`);
      assert.deepEqual(r.rows[0], {
        owner: 'birthgate_owner', prosecdef: true, proconfig: ['search_path=pg_catalog, pg_temp'], worker: true, operator: false, public: false,
      });
    });

    test('against an insert still running: the withdraw waits for it — committed → the late row rolled back; rolled back → withdrawn', async () => {
      for (const outcome of ['COMMIT', 'ROLLBACK'] as const) {
        const code = newDotCode(`withdraw-race-${outcome.toLowerCase()}`);
        const permitId = await issuePermit(db.pool, code);
        const inserting = await worker.connect();
        try {
          await inserting.query('BEGIN');
          await inserting.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [permitId]);
          const withdrawing = acts.withdrawPermit({ permitId, to: 'CANCELLED', actor: 'test', reason: 'race' });
          await blockedOnLock(db.pool, 'fn_permit_withdraw');
          await inserting.query(outcome);
          const undone = await withdrawing;
          if (outcome === 'COMMIT') {
            // A cancelled admission whose insert committed late ends with no live row: removed, birth retired.
            assert.equal(undone.action, 'done');
            assert.equal(await permitState(db.pool, permitId), 'FINALIZED');
            assert.equal(await rowsOf(db.pool, code), 0);
            const b = await db.pool.query(`SELECT status FROM birth_registry WHERE entity_code = $1 AND collection_name = 'dot_tools'`, [code]);
            assert.deepEqual(b.rows, [{ status: 'retired' }]);
          } else {
            assert.equal(undone.action, 'done');
            assert.equal(await permitState(db.pool, permitId), 'CANCELLED');
            assert.equal(await rowsOf(db.pool, code), 0);
          }
        } finally {
          inserting.release();
        }
      }
    });
  });

  describe('preflight recognises a code already born in the collection', () => {
    const preflightJson = async (code: string) =>
      (await worker.query<{ p: { already_born: { birth_id: number; row_id: number; status: string } | null } }>(
        'SELECT fn_admission_preflight($1, $2) AS p', [code, 'dot_tools'])).rows[0]!.p;

    test('born with a live row → already_born {birth_id, row_id, status}; unknown or retired → null', async () => {
      const fresh = newDotCode('preflight-fresh');
      assert.equal((await preflightJson(fresh)).already_born, null);

      const code = newDotCode('preflight-born');
      const permitId = await admitted(db, acts, code);
      const permit = (await db.pool.query<{ row_id: string; birth_id: string }>(
        'SELECT row_id, birth_id FROM birth_admission_permit WHERE permit_id = $1', [permitId])).rows[0]!;
      const p = await preflightJson(code);
      assert.deepEqual(p.already_born, { birth_id: Number(permit.birth_id), row_id: Number(permit.row_id), status: 'born' });
      // The same code in another collection is not born there.
      const other = await worker.query<{ p: { already_born: unknown } }>(`SELECT fn_admission_preflight($1, 'kb_articles') AS p`, [code]);
      assert.equal(other.rows[0]!.p.already_born, null);

      // Rolled back: the row is gone and the birth retired — nothing born any more.
      await worker.query('SELECT fn_admission_rollback($1, $2, $3)', [permitId, 'test', 'undo']);
      assert.equal((await preflightJson(code)).already_born, null);
    });

    test('a birth whose row is gone (a phantom) is not already born', async () => {
      const code = newDotCode('preflight-phantom');
      await admitted(db, acts, code);
      // The estate owner deletes its own row outside the admission (the row guard lets the table owner).
      const c = await db.pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(`SELECT set_config('role', 'directus', true)`);
        await c.query('DELETE FROM dot_tools WHERE code = $1', [code]);
        await c.query('COMMIT');
      } finally {
        c.release();
      }
      assert.equal((await preflightJson(code)).already_born, null);
    });
  });
});
