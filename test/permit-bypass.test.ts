// DESIGN §3 / issue 3 "Bypass attempts": every way around the permit gate is blocked with a clear
// error and leaves nothing written — as the least-privilege worker and as a superuser.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { FreshDatabase } from './support/db.ts';
import { createPool } from '../db/pool.ts';
import { applyStepsSql } from './support/packet-sql.ts';
import {
  admissionState, installWorkerRole, issuePermit, newDotCode, rejectsWith, workerUrl, worldDatabase,
} from './support/packet-world.ts';

const insertSql = `INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, $2, 'test') RETURNING id`;

describe('permit bypass attempts are refused', () => {
  let db: FreshDatabase;
  let worker: pg.Pool;

  before(async () => {
    db = await worldDatabase('permit_bypass');
    await applyStepsSql(db.pool, 99);
    await installWorkerRole(db.pool);
    worker = createPool(workerUrl(db.url), { max: 4, applicationName: 'test-worker' });
  });
  after(async () => {
    await worker?.end();
    await db?.dispose();
  });

  test('the worker is a plain login role: not a superuser, not the owner of dot_tools', async () => {
    const r = await worker.query(`SELECT rolsuper, rolbypassrls, rolcreaterole, current_user = (SELECT tableowner FROM pg_tables WHERE tablename = 'dot_tools') AS owner
                                    FROM pg_roles WHERE rolname = current_user`);
    assert.deepEqual(r.rows[0], { rolsuper: false, rolbypassrls: false, rolcreaterole: false, owner: false });
  });

  test('no permit: the worker insert is blocked', async () => {
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(insertSql, [newDotCode('bypass-none'), 'no permit']), 'BG403', /refused: no birth permit exists/);
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('expired permit: blocked, and the permit is not consumed', async () => {
    const code = newDotCode('bypass-expired');
    const permitId = await issuePermit(worker, code, { ttl: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"expired"}')`, [permitId]), 'BG403', /expired at/);
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test("another code's permit does not admit this code", async () => {
    const held = newDotCode('bypass-held');
    const permitId = await issuePermit(worker, held);
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(insertSql, [newDotCode('bypass-other'), 'other code']), 'BG403', /no birth permit exists/);
    assert.deepEqual(await admissionState(db.pool), before);
    const p = await db.pool.query(`SELECT state FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
    assert.equal(p.rows[0].state, 'RESERVED');
  });

  test("another collection's permit does not admit a dot_tools insert", async () => {
    const code = newDotCode('bypass-coll');
    await issuePermit(worker, code, { collection: 'entity_species' });
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(insertSql, [code, 'other collection']), 'BG403', /is for collection entity_species/);
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('a permit already consumed does not admit a second insert', async () => {
    const code = newDotCode('bypass-twice');
    const permitId = await issuePermit(worker, code);
    await worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"first"}')`, [permitId]);
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(insertSql, [code, 'second']), 'BG403', new RegExp(`permit ${permitId} was already consumed \\(FINALIZED\\)`));
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('two transactions consuming one permit at once: exactly one wins', async () => {
    const code = newDotCode('bypass-race');
    const permitId = await issuePermit(worker, code);
    const a = await worker.connect();
    const b = await worker.connect();
    try {
      await a.query('BEGIN');
      await b.query('BEGIN');
      const aRow = await a.query(insertSql, [code, 'racer a']);
      const bPid = (await b.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      const bInsert = b.query(insertSql, [code, 'racer b']).then(() => 'ok', (e: pg.DatabaseError) => e);
      // B must be parked on A's lock of the permit before A commits, or this is no race.
      for (let i = 0; ; i++) {
        const w = await db.pool.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [bPid]);
        if (w.rows[0]?.wait_event_type === 'Lock') break;
        assert.ok(i < 200, 'transaction B never waited on the permit lock');
        await new Promise((r) => setTimeout(r, 10));
      }
      await a.query('COMMIT');
      const bResult = await bInsert;
      assert.notEqual(bResult, 'ok');
      assert.equal((bResult as pg.DatabaseError).code, 'BG403');
      assert.match((bResult as pg.DatabaseError).message, /already consumed/);
      await b.query('ROLLBACK');
      const p = await db.pool.query(`SELECT state, row_id FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
      assert.deepEqual(p.rows[0], { state: 'FINALIZED', row_id: aRow.rows[0].id });
      const rows = await db.pool.query(`SELECT count(*)::int AS n FROM dot_tools WHERE code = $1`, [code]);
      assert.equal(rows.rows[0].n, 1);
    } finally {
      a.release();
      b.release();
    }
  });

  test('the worker cannot write permit state directly (permission denied)', async () => {
    const code = newDotCode('bypass-update');
    const permitId = await issuePermit(worker, code);
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(`UPDATE birth_admission_permit SET state = 'FINALIZED' WHERE permit_id = $1`, [permitId]), '42501');
    await rejectsWith(worker.query(`DELETE FROM birth_admission_permit WHERE permit_id = $1`, [permitId]), '42501');
    await rejectsWith(worker.query(`INSERT INTO birth_admission_permit (idempotency_key, entity_code, collection_name, state, expires_at, requested_by)
                                    VALUES ('forged', 'dot-forged-1', 'dot_tools', 'RESERVED', now() + interval '1 hour', 'x')`), '42501');
    await rejectsWith(worker.query(`SELECT fn_permit_move($1, 'CONSUMED', 'x', 'y')`, [permitId]), '42501');
    // fn_permit_open creates a permit RESERVED at once: only fn_permit_issue (which logs both moves) calls it.
    await rejectsWith(worker.query(`SELECT fn_permit_open('forged-open', 'DOT-999999', 'dot_tools', 60, 'x', NULL, NULL, true)`), '42501');
    // Through the API the insert-only states stay out of reach.
    await rejectsWith(worker.query(`SELECT fn_permit_transition($1, 'CONSUMED', 'x', 'y')`, [permitId]), 'BG422', /only through the dot_tools insert/);
    await rejectsWith(worker.query(`SELECT fn_permit_transition($1, 'FINALIZED', 'x', 'y')`, [permitId]), 'BG422');
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('the worker cannot disable the gate or finalize trigger, nor replica mode', async () => {
    await rejectsWith(worker.query(`ALTER TABLE dot_tools DISABLE TRIGGER trg_permit_gate_dot_tools`), '42501', /must be owner/);
    await rejectsWith(worker.query(`ALTER TABLE dot_tools DISABLE TRIGGER trg_dt_finalize`), '42501', /must be owner/);
    await rejectsWith(worker.query(`DROP TRIGGER trg_permit_gate_dot_tools ON dot_tools`), '42501');
    await rejectsWith(worker.query(`SET session_replication_role = replica`), '42501');
    const t = await db.pool.query(`SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'dot_tools'::regclass
                                     AND tgname IN ('trg_dt_finalize', 'trg_permit_gate_dot_tools') ORDER BY tgname`);
    assert.deepEqual(t.rows, [{ tgname: 'trg_dt_finalize', tgenabled: 'A' }, { tgname: 'trg_permit_gate_dot_tools', tgenabled: 'A' }]);
  });

  test('a superuser in session_replication_role = replica is still gated (ENABLE ALWAYS)', async () => {
    const c = await db.pool.connect();
    try {
      const before = await admissionState(db.pool);
      await c.query('SET session_replication_role = replica');
      await rejectsWith(c.query(insertSql, [newDotCode('bypass-replica'), 'replica']), 'BG403', /no birth permit exists/);
      assert.deepEqual(await admissionState(db.pool), before);
    } finally {
      await c.query('RESET session_replication_role');
      c.release();
    }
  });

  test('SET CONSTRAINTS ALL IMMEDIATE then ROLLBACK: the permit is back to RESERVED', async () => {
    const code = newDotCode('bypass-immediate');
    const permitId = await issuePermit(worker, code);
    const before = await admissionState(db.pool);
    const c = await worker.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"immediate"}')`, [permitId]);
      await c.query('SET CONSTRAINTS ALL IMMEDIATE');
      const inTxn = await c.query(`SELECT permit ->> 'state' AS state FROM (SELECT fn_admission_state($1) -> 'permit' AS permit) s`, [permitId]);
      assert.equal(inTxn.rows[0].state, 'FINALIZED', 'finalize fired early inside the transaction');
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    const p = await db.pool.query(`SELECT state, row_id, birth_id FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
    assert.deepEqual(p.rows[0], { state: 'RESERVED', row_id: null, birth_id: null });
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('a row admitted in a transaction cannot be deleted before commit; if it vanishes anyway, finalize fails closed', async () => {
    const code = newDotCode('bypass-vanish');
    const permitId = await issuePermit(worker, code);
    const before = await admissionState(db.pool);
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"vanish"}')`, [permitId]);
      await rejectsWith(c.query(`DELETE FROM dot_tools WHERE code = $1`, [code]), 'BG403', /admitted in this transaction/);
      await c.query('ROLLBACK');
      // A superuser who switches the row guard off inside the transaction still cannot commit it.
      await c.query('BEGIN');
      await c.query('ALTER TABLE dot_tools DISABLE TRIGGER trg_permit_guard_delete_dot_tools');
      await c.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"vanish"}')`, [permitId]);
      await c.query(`DELETE FROM dot_tools WHERE code = $1`, [code]);
      await rejectsWith(c.query('COMMIT'), 'BG403', /vanished before commit/);
    } finally {
      c.release();
    }
    assert.deepEqual(await admissionState(db.pool), before);
  });
});
