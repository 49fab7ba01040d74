// Least privilege of birthgate_worker (CONTRACT.md "Roles", KB-7D57 steps 4/5): the worker cannot
// write birth_registry itself; a birth happens only as the effect of an insert the permit gate
// admitted, written by the SECURITY DEFINER birth triggers with their owner's rights.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createPool } from '../db/pool.ts';
import type { FreshDatabase } from './support/db.ts';
import { applyStep, applyStepsSql, rollbackStep, verifyStep } from './support/packet-sql.ts';
import {
  admissionState, installWorkerRole, issuePermit, newDotCode, rejectsWith, workerUrl, worldDatabase,
} from './support/packet-world.ts';

const insertSql = `INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, $2, 'test') RETURNING id`;

/** What the birth functions look like in the catalog: owner, rights mode, settings, who may bind them. */
const birthFnAttrs = (withWorker = true) => `
  SELECT p.proname, p.proowner::regrole::text AS owner, p.prosecdef, p.proconfig,
         has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
         ${withWorker ? `, has_function_privilege('birthgate_worker', p.oid, 'EXECUTE') AS worker_execute` : ''}
    FROM pg_proc p
   WHERE p.pronamespace = 'public'::regnamespace AND p.proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id')
   ORDER BY p.proname`;

const workerBirthRights = `
  SELECT has_table_privilege('birthgate_worker', 'birth_registry', 'SELECT') AS sel,
         has_table_privilege('birthgate_worker', 'birth_registry', 'INSERT') AS ins,
         has_table_privilege('birthgate_worker', 'birth_registry', 'UPDATE') AS upd,
         has_table_privilege('birthgate_worker', 'birth_registry', 'DELETE') AS del,
         has_table_privilege('birthgate_worker', 'birth_registry', 'TRUNCATE') AS trunc,
         has_sequence_privilege('birthgate_worker', pg_get_serial_sequence('birth_registry', 'id'), 'USAGE') AS seq`;

/** The whole of birth_registry, so "nothing written" also covers an UPDATE that keeps the count. */
const birthsDigest = `SELECT count(*)::int AS n, md5(coalesce(string_agg(b::text, '|' ORDER BY b.id), '')) AS digest FROM birth_registry b`;

describe('the worker cannot write births itself (full packet)', () => {
  let db: FreshDatabase;
  let worker: pg.Pool;

  before(async () => {
    db = await worldDatabase('worker_privilege');
    await applyStepsSql(db.pool, 99);
    await installWorkerRole(db.pool);
    worker = createPool(workerUrl(db.url), { max: 2, applicationName: 'test-worker' });
  });
  after(async () => {
    await worker?.end();
    await db?.dispose();
  });

  test('the worker holds SELECT on birth_registry and nothing else there', async () => {
    const r = await db.pool.query(workerBirthRights);
    assert.deepEqual(r.rows[0], { sel: true, ins: false, upd: false, del: false, trunc: false, seq: false });
  });

  test('the birth functions are SECURITY DEFINER, search_path pinned, owned by directus, not for PUBLIC', async () => {
    const r = await db.pool.query(birthFnAttrs());
    assert.deepEqual(r.rows, [
      { proname: 'fn_birth_registry_auto', owner: 'directus', prosecdef: true, proconfig: ['search_path=public, pg_temp'], public_execute: false, worker_execute: false },
      { proname: 'fn_birth_registry_auto_id', owner: 'directus', prosecdef: true, proconfig: ['search_path=public, pg_temp'], public_execute: false, worker_execute: false },
    ]);
    assert.equal((await verifyStep(db.pool, 4)).ok, true);
    assert.equal((await verifyStep(db.pool, 5)).ok, true);
  });

  test('a direct INSERT, UPDATE, DELETE or TRUNCATE of birth_registry by the worker is denied and writes nothing', async () => {
    const code = newDotCode('forged-birth');
    const before = await admissionState(db.pool);
    const births = (await db.pool.query(birthsDigest)).rows[0];
    await rejectsWith(worker.query(
      `INSERT INTO birth_registry (entity_code, collection_name, birth_method) VALUES ($1, 'dot_tools', 'forged')`, [code]),
      '42501', /permission denied for table birth_registry/);
    await rejectsWith(worker.query(`UPDATE birth_registry SET status = 'retired' WHERE collection_name = 'dot_tools'`),
      '42501', /permission denied for table birth_registry/);
    await rejectsWith(worker.query(`DELETE FROM birth_registry WHERE collection_name = 'dot_tools'`),
      '42501', /permission denied for table birth_registry/);
    await rejectsWith(worker.query(`TRUNCATE birth_registry`), '42501', /permission denied for table birth_registry/);
    await rejectsWith(worker.query(`SELECT nextval(pg_get_serial_sequence('birth_registry', 'id'))`), '42501');
    assert.deepEqual(await admissionState(db.pool), before);
    assert.deepEqual((await db.pool.query(birthsDigest)).rows[0], births);
    assert.equal((await db.pool.query(`SELECT 1 FROM birth_registry WHERE entity_code = $1`, [code])).rowCount, 0);
  });

  test('the worker cannot bind the definer birth functions to a table of its own', async () => {
    const c = await worker.connect();
    try {
      // A temp table named like the family: were the binding allowed, its birth would land in
      // birth_registry as collection dot_tools with the owner's rights and no permit.
      await c.query(`CREATE TEMP TABLE dot_tools (id bigint, code text, name text)`);
      await rejectsWith(c.query(`CREATE TRIGGER forge AFTER INSERT ON pg_temp.dot_tools FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto('code')`),
        '42501', /permission denied for function fn_birth_registry_auto/);
      await rejectsWith(c.query(`CREATE TRIGGER forge_id AFTER INSERT ON pg_temp.dot_tools FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto_id('id')`),
        '42501', /permission denied for function fn_birth_registry_auto_id/);
      // Trigger functions cannot be called directly either.
      await rejectsWith(c.query(`SELECT fn_birth_registry_auto()`), '42501');
    } finally {
      await c.query('DISCARD TEMP').catch(() => undefined);
      c.release();
    }
  });

  test('a permitted insert by the worker still births the row, with the owner\'s rights', async () => {
    const code = newDotCode('worker-birth');
    const permitId = await issuePermit(worker, code);
    const row = await worker.query<{ id: string }>(insertSql, [code, 'born through the gate']);
    const b = await db.pool.query(
      `SELECT b.id::text, b.collection_name, b.entity_id::text, b.entity_name, b.birth_method, b.birth_trigger, b.species_code,
              b.jsonb_profile -> 'admission' ->> 'permit_id' AS admitted_by
         FROM birth_registry b WHERE b.entity_code = $1`, [code]);
    assert.equal(b.rowCount, 1, 'born once, although two AFTER INSERT birth triggers fire');
    const { id: birthId, ...birth } = b.rows[0];
    assert.deepEqual(birth, {
      collection_name: 'dot_tools', entity_id: row.rows[0]!.id, entity_name: 'born through the gate',
      birth_method: 'trigger', birth_trigger: 'birth_trigger_dot_tools', species_code: 'sp-dot-0001', admitted_by: permitId,
    });
    const p = await db.pool.query(`SELECT state, row_id::text, birth_id::text FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
    assert.deepEqual(p.rows[0], { state: 'FINALIZED', row_id: row.rows[0]!.id, birth_id: birthId });
    // The estate's invoker triggers still see the caller: the row and its audit name the worker.
    const who = await db.pool.query(
      `SELECT d.created_by, (SELECT c.actor FROM registry_changelog c WHERE c.table_name = 'dot_tools' AND c.entity_code = d.code) AS actor
         FROM dot_tools d WHERE d.code = $1`, [code]);
    assert.deepEqual(who.rows[0], { created_by: 'birthgate_worker', actor: 'birthgate_worker' });
  });

  test('an admission through fn_admission_insert_dot_tools births the row too', async () => {
    const code = newDotCode('worker-api-birth');
    const permitId = await issuePermit(worker, code);
    await worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"through the API"}')`, [permitId]);
    const s = await worker.query(`SELECT fn_admission_state($1) AS s`, [permitId]);
    assert.equal(s.rows[0].s.permit.state, 'FINALIZED');
    assert.equal(s.rows[0].s.birth_status, 'born');
    assert.deepEqual(s.rows[0].s.birth.collection_name, 'dot_tools');
  });

  test('without a permit the worker gets neither the row nor the birth', async () => {
    const code = newDotCode('worker-no-permit');
    const before = await admissionState(db.pool);
    await rejectsWith(worker.query(insertSql, [code, 'no permit']), 'BG403', /no birth permit exists/);
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('KB-7D57 step 4: other families bound to the birth functions birth as before, with the owner\'s rights', async () => {
    // A role that may insert into a family but not into birth_registry: the worker, granted for this test only.
    // (SELECT: RETURNING, and fn_pre_birth_check's name check on collection_registry)
    await db.pool.query(`GRANT SELECT, INSERT ON pivot_results, collection_registry TO birthgate_worker`);
    await db.pool.query(`GRANT USAGE ON SEQUENCE pivot_results_id_seq, collection_registry_id_seq TO birthgate_worker`);
    try {
      const pr = await worker.query<{ id: string }>(`INSERT INTO pivot_results (pivot_code, row_count) VALUES ('PIV-X', 1) RETURNING id::text`);
      const prId = pr.rows[0]!.id;
      const code = `CR-${process.pid}${Date.now() % 100000}`;
      const cr = await worker.query<{ id: string }>(
        `INSERT INTO collection_registry (code, collection, name, _dot_origin) VALUES ($1, 'x_priv', $2, 'test') RETURNING id::text`, [code, `priv ${code}`]);
      const b = await db.pool.query(
        `SELECT entity_code, collection_name, entity_id::text, birth_method, birth_trigger, jsonb_profile FROM birth_registry
          WHERE (entity_code, collection_name) IN (($1, 'pivot_results'), ($2, 'collection_registry')) ORDER BY collection_name`,
        [`pivot_results:${prId}`, code]);
      assert.deepEqual(b.rows, [
        { entity_code: code, collection_name: 'collection_registry', entity_id: cr.rows[0]!.id, birth_method: 'trigger',
          birth_trigger: 'trg_birth_collection_registry', jsonb_profile: { op: 'INSERT', table: 'collection_registry' } },
        { entity_code: `pivot_results:${prId}`, collection_name: 'pivot_results', entity_id: prId, birth_method: 'trigger',
          birth_trigger: 'trg_birth_id_pivot_results', jsonb_profile: { op: 'INSERT', table: 'pivot_results', keyed_by: 'id' } },
      ]);
      assert.equal((await db.pool.query(workerBirthRights)).rows[0].ins, false, 'the worker never held INSERT on birth_registry');
    } finally {
      await db.pool.query(`REVOKE ALL ON pivot_results, collection_registry FROM birthgate_worker`);
      await db.pool.query(`REVOKE ALL ON SEQUENCE pivot_results_id_seq, collection_registry_id_seq FROM birthgate_worker`);
    }
  });

  test('re-running the role file takes back birth_registry writes an earlier grant left behind', async () => {
    await db.pool.query(`GRANT INSERT, UPDATE, DELETE ON birth_registry TO birthgate_worker`);
    await db.pool.query(`GRANT USAGE ON SEQUENCE birth_registry_id_seq TO birthgate_worker`);
    await installWorkerRole(db.pool);
    const r = await db.pool.query(workerBirthRights);
    assert.deepEqual(r.rows[0], { sel: true, ins: false, upd: false, del: false, trunc: false, seq: false });
  });
});

/** Before the permit ledger exists (admissionState needs it): the rows and births, whole. */
const writtenState = async (q: Pick<pg.Pool, 'query'>) => ({
  births: (await q.query(birthsDigest)).rows[0],
  dotTools: (await q.query(`SELECT count(*)::int AS n, max(id)::text AS max_id FROM dot_tools`)).rows[0],
  changelog: (await q.query(`SELECT count(*)::int AS n FROM registry_changelog`)).rows[0],
});

describe('the worker on a packet applied only through step 3 fails closed', () => {
  let db: FreshDatabase;
  let worker: pg.Pool;
  let entryFns: unknown[];

  before(async () => {
    db = await worldDatabase('worker_partial');
    entryFns = (await db.pool.query(birthFnAttrs(false))).rows;
    await applyStepsSql(db.pool, 3);
    await installWorkerRole(db.pool);
    worker = createPool(workerUrl(db.url), { max: 2, applicationName: 'test-worker' });
  });
  after(async () => {
    await worker?.end();
    await db?.dispose();
  });

  test('the entry birth functions are invoker functions that PUBLIC may bind', () => {
    assert.deepEqual(entryFns, [
      { proname: 'fn_birth_registry_auto', owner: 'directus', prosecdef: false, proconfig: null, public_execute: true },
      { proname: 'fn_birth_registry_auto_id', owner: 'directus', prosecdef: false, proconfig: null, public_execute: true },
    ]);
  });

  test('a worker insert into dot_tools is refused while the permit gate and finalize are not in place', async () => {
    const before = await writtenState(db.pool);
    await rejectsWith(worker.query(insertSql, [newDotCode('partial'), 'before step 4']), '42501', /permission denied for table dot_tools/);
    assert.deepEqual(await writtenState(db.pool), before);
  });

  test('steps 4 and 5 rolled back restore the entry attributes and PUBLIC\'s EXECUTE', async () => {
    await applyStep(db.pool, 4);
    await applyStep(db.pool, 5);
    await rollbackStep(db.pool, 5);
    await rollbackStep(db.pool, 4);
    const r = await db.pool.query(birthFnAttrs(false));
    assert.deepEqual(r.rows, entryFns);
    assert.equal((await verifyStep(db.pool, 4)).ok, false);
    assert.equal((await verifyStep(db.pool, 5)).ok, false);
    await rejectsWith(worker.query(insertSql, [newDotCode('partial-again'), 'after rollback']), '42501', /permission denied for table dot_tools/);
  });
});
