// The SQL API past the KB-7D57 test plan (KB-4410 §D, CONTRACT.md): preflight stop-conditions, the
// registry-driven code rule and its STOP-on-mismatch coverage, break-glass, retire and admission
// rollback, the drift monitor's gate_drift dim, and the worker role's revoke counterpart.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createPool } from '../db/pool.ts';
import { readSql } from '../db/sql-files.ts';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import type { FreshDatabase } from './support/db.ts';
import { applyStepsSql } from './support/packet-sql.ts';
import {
  installOperatorLogin, installWorkerRole, issuePermit, newDotCode, operatorLogin, operatorUrl, rebaseline, rejectsWith, workerUrl, worldDatabase,
} from './support/packet-world.ts';

type Preflight = { blockers: Array<{ kind: string; detail: string; hard: boolean }>; block_dims: Array<{ dim: string; count: number }>; code_rule_ok: boolean; family_flag: boolean; kill_switch: boolean };

describe('admission SQL API beyond the test plan', () => {
  let db: FreshDatabase;
  let worker: pg.Pool;
  let operator: pg.Pool;
  const preflight = async (code: string, coll = 'dot_tools') =>
    (await worker.query<{ p: Preflight }>('SELECT fn_admission_preflight($1, $2) AS p', [code, coll])).rows[0]!.p;

  before(async () => {
    db = await worldDatabase('admission_sql');
    await applyStepsSql(db.pool, 99);
    await installWorkerRole(db.pool);
    worker = createPool(workerUrl(db.url), { max: 2, applicationName: 'test-worker' });
    await installOperatorLogin(db.pool);
    operator = createPool(operatorUrl(db.url), { max: 1, applicationName: 'test-operator' });
  });
  after(async () => {
    await worker?.end();
    await operator?.end();
    await db?.dispose();
  });

  test('permit issue is idempotent on its key and holds one live permit per (code, collection)', async () => {
    const code = newDotCode('issue');
    const issue = (key: string, c = code) =>
      worker.query<{ permit_id: string; state: string }>(`SELECT permit_id, state FROM fn_permit_issue($1, $2, 'dot_tools', 600, 'wf')`, [key, c]);
    const first = (await issue(`wf:${code}`)).rows[0]!;
    assert.deepEqual((await issue(`wf:${code}`)).rows[0], first, 'same key, same request → the same permit');
    await rejectsWith(issue(`wf:${code}`, `${code}-other`), 'BG409', /idempotency key already issued permit/);
    await rejectsWith(issue(`wf:${code}:second`), 'BG409', new RegExp(`another active permit \\(${first.permit_id}\\) holds`));
    await worker.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'wf', 'operator cancel')`, [first.permit_id]);
    assert.equal((await issue(`wf:${code}`)).rows[0]!.state, 'CANCELLED', 'the key still answers with its permit');
    assert.equal((await issue(`wf:${code}:second`)).rows[0]!.state, 'RESERVED', 'a cancelled permit no longer holds the code');
    await rejectsWith(worker.query(`SELECT fn_permit_transition($1, 'RESERVED', 'wf', 'revive')`, [first.permit_id]), 'BG422', /CANCELLED → RESERVED/);
  });

  test('a requested permit holds the code for a stuck birth; fn_permit_issue with its key reserves it', async () => {
    type Row = { permit_id: string; state: string; expires_at: Date };
    const code = newDotCode('request');
    const key = `wf:${code}#run-1`;
    const request = (k = key, c = code) =>
      worker.query<Row>(`SELECT permit_id, state, expires_at FROM fn_permit_request($1, $2, 'dot_tools', 600, 'wf', $1, 'run-1')`, [k, c]);
    const issue = (k = key, c = code, ttl = 300) =>
      worker.query<Row>(`SELECT permit_id, state, expires_at FROM fn_permit_issue($1, $2, 'dot_tools', $3, 'wf', $1, 'run-1')`, [k, c, ttl]);
    const transitions = async (id: string) =>
      (await db.pool.query<{ from_state: string | null; to_state: string; reason: string }>(
        'SELECT from_state, to_state, reason FROM birth_admission_permit_transition WHERE permit_id = $1 ORDER BY transition_id', [id])).rows
        .map((t) => [t.from_state, t.to_state, t.reason]);
    const inStuck = async (id: string) =>
      (await worker.query<{ state: string }>('SELECT state FROM v_permit_stuck WHERE permit_id = $1', [id])).rows.map((r) => r.state);

    const requested = (await request()).rows[0]!;
    assert.equal(requested.state, 'REQUESTED');
    const id = requested.permit_id;
    assert.deepEqual(await transitions(id), [[null, 'REQUESTED', 'requested']]);
    // Idempotent on the key; a conflict on other params or on the code, whoever asks.
    assert.deepEqual((await request()).rows[0], requested, 'same key, same request → the same permit');
    await rejectsWith(request(key, `${code}-other`), 'BG409', /idempotency key already issued permit/);
    await rejectsWith(request(`${key}:second`), 'BG409', new RegExp(`another active permit \\(${id}\\) holds`));
    await rejectsWith(issue(`${key}:second`), 'BG409', new RegExp(`another active permit \\(${id}\\) holds`));
    await rejectsWith(issue(key, `${code}-other`), 'BG409', /idempotency key already issued permit/);
    assert.deepEqual(await transitions(id), [[null, 'REQUESTED', 'requested']]);

    // A REQUESTED permit admits nothing: the gate wants RESERVED.
    await rejectsWith(worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [id]), 'BG403');
    // The stuck births are in v_permit_stuck before their placeholder TTL is due, and the expiry
    // sweep leaves a REQUESTED permit alone even past it.
    assert.deepEqual(await inStuck(id), ['REQUESTED']);
    await db.pool.query(`UPDATE birth_admission_permit SET expires_at = now() - interval '1 hour' WHERE permit_id = $1`, [id]);
    await worker.query(`SELECT fn_permit_expire_due('test-sweep')`);
    assert.equal((await request()).rows[0]!.state, 'REQUESTED');
    assert.deepEqual(await inStuck(id), ['REQUESTED']);

    // The stop-conditions cleared: the same key reserves the same permit, its TTL counted from now.
    const t0 = Date.now();
    const reserved = (await issue()).rows[0]!;
    assert.deepEqual([reserved.permit_id, reserved.state], [id, 'RESERVED']);
    const ttlLeft = reserved.expires_at.getTime() - t0;
    assert.ok(ttlLeft > 290_000 && ttlLeft < 310_000, `expires_at reset at reservation (${ttlLeft} ms left)`);
    assert.deepEqual(await transitions(id), [[null, 'REQUESTED', 'requested'], ['REQUESTED', 'RESERVED', 'reserved for 300 seconds']]);
    assert.deepEqual(await inStuck(id), []);
    // Retries of either call now return the RESERVED permit unchanged, with no new transition.
    assert.deepEqual((await issue(key, code, 900)).rows[0], reserved);
    assert.deepEqual((await request()).rows[0], reserved);
    assert.equal((await transitions(id)).length, 2);

    await worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [id]);
    assert.deepEqual((await transitions(id)).map(([from, to]) => [from, to]),
      [[null, 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'CONSUMED'], ['CONSUMED', 'FINALIZED']]);
    assert.equal((await issue()).rows[0]!.state, 'FINALIZED', 'a used permit is never reserved again');

    // A stuck birth cancelled: REQUESTED → CANCELLED; the key never revives it, the code is free again.
    const other = newDotCode('request-cancel');
    const parked = (await request(`wf:${other}`, other)).rows[0]!;
    await worker.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'op', 'operator cancel')`, [parked.permit_id]);
    assert.deepEqual(await transitions(parked.permit_id), [[null, 'REQUESTED', 'requested'], ['REQUESTED', 'CANCELLED', 'operator cancel']]);
    assert.equal((await issue(`wf:${other}`, other)).rows[0]!.state, 'CANCELLED');
    assert.equal((await request(`wf:${other}`, other)).rows[0]!.state, 'CANCELLED');
    assert.deepEqual(await inStuck(parked.permit_id), []);
    assert.equal((await issue(`wf:${other}:again`, other)).rows[0]!.state, 'RESERVED');
    assert.equal((await db.pool.query(`SELECT count(*)::int AS n FROM dot_tools WHERE code = $1`, [other])).rows[0].n, 0);
  });

  test('preflight is clear for a dot_tools code that passes its family rule', async () => {
    const p = await preflight(newDotCode('pre-clear'));
    assert.deepEqual(p.blockers, []);
    assert.equal(p.family_flag, true);
    assert.equal(p.code_rule_ok, true);
  });

  test('preflight names every stop-condition: code rule, family flag, kill switch', async () => {
    assert.deepEqual((await preflight('DOT_bad code')).blockers.map((b) => b.kind), ['code_rule']);
    assert.deepEqual((await preflight('sp-x', 'entity_species')).blockers.map((b) => b.kind), ['family_flag_off', 'code_rule']);
    // The kill switch is an operator's act on the record (fn_admission_halt), and it is hard.
    await operator.query(`SELECT fn_admission_halt('dot_tools', true, 'op@test', 'incident drill')`);
    try {
      const halted = (await preflight(newDotCode('pre-halt'))).blockers;
      assert.deepEqual(halted.map((b) => [b.kind, b.hard]), [['kill_switch', true]]);
    } finally {
      await operator.query(`SELECT fn_admission_halt('dot_tools', false, 'op@test', 'drill over')`);
    }
    const log = await db.pool.query(`SELECT halted, actor, session_role FROM birth_admission_switch_log ORDER BY switch_id`);
    assert.deepEqual(log.rows, [
      { halted: true, actor: 'op@test', session_role: operatorLogin },
      { halted: false, actor: 'op@test', session_role: operatorLogin },
    ]);
    await rejectsWith(worker.query(`SELECT fn_admission_halt('dot_tools', true, 'w', 'x')`), '42501');
  });

  test('fn_admission_open: the stop-conditions and, only when nothing stops the admission, its RESERVED permit, in one call', async () => {
    type Open = Preflight & { already_born: unknown; permit: { permit_id: number; state: string; idempotency_key: string } | null };
    const open = async (key: string, code: string, coll = 'dot_tools') =>
      (await worker.query<{ o: Open }>(`SELECT fn_admission_open($1, $2, $3, 600, 'wf', $3, 'run-1') AS o`, [code, coll, key])).rows[0]!.o;
    const ledgerOf = async (code: string) => (await db.pool.query<{ permit_id: string; state: string; moves: string[] }>(
      `SELECT p.permit_id::text, p.state,
              array(SELECT coalesce(t.from_state, '-') || '>' || t.to_state FROM birth_admission_permit_transition t
                     WHERE t.permit_id = p.permit_id ORDER BY t.transition_id) AS moves
         FROM birth_admission_permit p WHERE p.entity_code = $1 ORDER BY p.permit_id`, [code])).rows;

    // Clear: a RESERVED permit, logged as fn_permit_issue logs it; the same key answers with the same permit.
    const code = newDotCode('open');
    const first = await open(`wf:${code}#r`, code);
    assert.deepEqual([first.blockers, first.already_born, first.permit?.state, first.permit?.idempotency_key], [[], null, 'RESERVED', `wf:${code}#r`]);
    const reserved = [{ permit_id: String(first.permit!.permit_id), state: 'RESERVED', moves: ['->REQUESTED', 'REQUESTED>RESERVED'] }];
    assert.deepEqual(await ledgerOf(code), reserved);
    assert.equal((await open(`wf:${code}#r`, code)).permit?.permit_id, first.permit!.permit_id, 'idempotent on the key');
    assert.deepEqual(await ledgerOf(code), reserved, 'the second call wrote nothing');
    await rejectsWith(open(`wf:${code}#r`, newDotCode('open-other')), 'BG409', /idempotency key already issued permit/);
    await rejectsWith(open(`wf:${code}#r`, 'DOT_bad open'), 'BG409', /idempotency key already issued permit/);
    await rejectsWith(open(`wf:${code}#other`, code), 'BG409', /another active permit/);

    // Stopped: the blockers, no permit, nothing written.
    const bad = `DOT_bad open ${process.pid}`;
    const stopped = await open(`wf:${bad}#r`, bad);
    assert.deepEqual([stopped.blockers.map((b) => b.kind), stopped.permit], [['code_rule'], null]);
    assert.deepEqual(await ledgerOf(bad), []);

    // Stopped, but the key already holds a permit (a re-run after a lost answer): that permit, unchanged.
    const held = newDotCode('open-held');
    const heldFirst = await open(`wf:${held}#r`, held);
    await operator.query(`SELECT fn_admission_halt('dot_tools', true, 'op@test', 'open drill')`);
    try {
      const again = await open(`wf:${held}#r`, held);
      assert.deepEqual([again.blockers.map((b) => [b.kind, b.hard]), again.permit?.permit_id, again.permit?.state],
        [[['kill_switch', true]], heldFirst.permit!.permit_id, 'RESERVED']);
      const other = newDotCode('open-halted');
      assert.equal((await open(`wf:${other}#r`, other)).permit, null, 'halted: no permit for a new key');
      assert.deepEqual(await ledgerOf(other), []);
    } finally {
      await operator.query(`SELECT fn_admission_halt('dot_tools', false, 'op@test', 'open drill over')`);
    }

    // Already born: the birth, no permit for the new key.
    const born = newDotCode('open-born');
    const admitted = await open(`wf:${born}#r1`, born);
    await worker.query(`SELECT fn_admission_insert_dot_tools($1, '{}'::jsonb)`, [admitted.permit!.permit_id]);
    const late = await open(`wf:${born}#r2`, born);
    assert.equal(typeof late.already_born, 'object');
    assert.notEqual(late.already_born, null);
    assert.equal(late.permit, null);
    assert.deepEqual((await ledgerOf(born)).map((p) => p.state), ['FINALIZED']);

    // Bad input is refused before anything is read or written, whichever way the admission would go.
    for (const [args, message] of [
      [['', bad, 'k', 600, 'wf'], /idempotency_key must not be empty/],
      [['k2', bad, 'dot_tools', 600, ' '], /actor must not be empty/],
      [['k3', bad, 'dot_tools', 0, 'wf'], /ttl_seconds must be between/],
      [['k4', code, 'nope', 600, 'wf'], /unknown or not managed/],
    ] as const) {
      const [key, c, coll, ttl, actor] = args;
      await rejectsWith(worker.query(`SELECT fn_admission_open($1, $2, $3, $4, $5)`, [c, coll, key, ttl, actor]), 'BG400', message);
    }

    // Only the worker may call it: the operator and the estate owner are refused by the database.
    await rejectsWith(operator.query(`SELECT fn_admission_open($1, 'dot_tools', 'k', 600, 'op')`, [newDotCode('open-op')]), '42501', /permission denied for function fn_admission_open/);
    const may = await db.pool.query<{ role: string; ok: boolean }>(
      `SELECT r AS role, has_function_privilege(r, 'fn_admission_open(text,text,text,integer,text,text,text)', 'EXECUTE') AS ok
         FROM unnest(ARRAY['birthgate_worker', 'directus', 'birthgate_operator']) r ORDER BY r`);
    assert.deepEqual(may.rows, [{ role: 'birthgate_operator', ok: false }, { role: 'birthgate_worker', ok: true }, { role: 'directus', ok: false }]);
  });

  test('a superuser who loosens the permit checks or hands fn_admission_open to the estate owner is drift', async () => {
    const def = (await db.pool.query<{ d: string }>(
      `SELECT pg_get_functiondef('fn_permit_require_params(text,integer,text,text,text)'::regprocedure) AS d`)).rows[0]!.d;
    await db.pool.query(def.replace('p_ttl_seconds > 604800', 'p_ttl_seconds > 6048000'));
    await db.pool.query('GRANT EXECUTE ON FUNCTION fn_admission_open(text,text,text,integer,text,text,text) TO directus');
    try {
      const d = await db.pool.query(`SELECT kind, name, drift FROM fn_drift_check() WHERE kind = 'function' ORDER BY name`);
      assert.deepEqual(d.rows, [
        { kind: 'function', name: 'public.fn_admission_open(text,text,text,integer,text,text,text)', drift: 'CHANGED' },
        { kind: 'function', name: 'public.fn_permit_require_params(text,integer,text,text,text)', drift: 'CHANGED' },
      ]);
    } finally {
      await db.pool.query('REVOKE EXECUTE ON FUNCTION fn_admission_open(text,text,text,integer,text,text,text) FROM directus');
      await db.pool.query(def);
    }
    assert.equal(await rebaseline(operator, 'drill: permit checks loosened and restored'), 0);
    assert.deepEqual((await db.pool.query('SELECT * FROM fn_drift_check()')).rows, []);
  });

  test('a disabled governed trigger is drift: gate_drift blocks birth_admit until restored and rebaselined', async () => {
    assert.deepEqual((await db.pool.query('SELECT * FROM fn_drift_check()')).rows, []);
    await db.pool.query('ALTER TABLE dot_tools DISABLE TRIGGER trg_permit_gate_dot_tools');
    try {
      const drift = await db.pool.query<{ kind: string; name: string; drift: string }>('SELECT kind, name, drift FROM v_gate_drift ORDER BY kind, name');
      assert.deepEqual(drift.rows, [
        { kind: 'ddl', name: 'ALTER TABLE public.dot_tools', drift: 'DDL' },
        { kind: 'trigger', name: 'public.dot_tools.trg_permit_gate_dot_tools', drift: 'DISABLED' },
        { kind: 'trigger_set', name: 'public.dot_tools', drift: 'CHANGED' },
      ]);
      const p = await preflight(newDotCode('pre-drift'));
      assert.deepEqual(p.block_dims.map((d) => [d.dim, d.count]), [['gate_drift', 3]]);
      await rejectsWith(worker.query(`SELECT * FROM fn_admission_assert_safe('birth_admit')`), 'BG423', /gate_drift=3/);
      // Re-enabled as an ordinary trigger is still drift: replica mode would skip it (tgenabled 'O', not 'A').
      await db.pool.query('ALTER TABLE dot_tools ENABLE TRIGGER trg_permit_gate_dot_tools');
      const o = await db.pool.query<{ kind: string; drift: string }>(`SELECT kind, drift FROM fn_drift_check() WHERE kind <> 'ddl'`);
      assert.deepEqual(o.rows, [{ kind: 'trigger_set', drift: 'CHANGED' }]);
    } finally {
      await db.pool.query('ALTER TABLE dot_tools ENABLE ALWAYS TRIGGER trg_permit_gate_dot_tools');
    }
    // Restored, the definitions match again — but the trigger's catalog row was rewritten (xmin) and the
    // DDL stays on the record, until an owner accepts it.
    const left = await db.pool.query<{ kind: string }>('SELECT DISTINCT kind FROM fn_drift_check() ORDER BY kind');
    assert.deepEqual(left.rows, [{ kind: 'ddl' }, { kind: 'trigger_set' }]);
    assert.equal(await rebaseline(operator, 'drill: trigger disabled and restored'), 0);
    assert.deepEqual((await db.pool.query('SELECT * FROM fn_drift_check()')).rows, []);
  });

  test('a swapped governed function body is drift, and stays loud after it is restored', async () => {
    const def = (await db.pool.query<{ d: string }>(`SELECT pg_get_functiondef('fn_dt_finalize'::regproc) AS d`)).rows[0]!.d;
    await db.pool.query(def.replace("'finalized at commit, birth %s'", "'finalised at commit, birth %s'"));
    try {
      const d = await db.pool.query(`SELECT kind, name, drift FROM fn_drift_check() WHERE kind = 'function'`);
      assert.deepEqual(d.rows, [{ kind: 'function', name: 'public.fn_dt_finalize()', drift: 'CHANGED' }]);
    } finally {
      await db.pool.query(def);
    }
    const d = await db.pool.query(`SELECT kind, name, drift FROM fn_drift_check() ORDER BY kind, name`);
    assert.deepEqual(d.rows, [
      { kind: 'ddl', name: 'CREATE FUNCTION public.fn_dt_finalize()', drift: 'DDL' },
      { kind: 'ddl', name: 'CREATE FUNCTION public.fn_dt_finalize()', drift: 'DDL' },
      { kind: 'function', name: 'public.fn_dt_finalize()', drift: 'CHANGED' },
    ], 'the definition is back, but its catalog row was rewritten and the DDL is on the record');
    assert.equal(await rebaseline(operator, 'drill: body swapped and restored'), 0);
    assert.deepEqual((await db.pool.query('SELECT * FROM fn_drift_check()')).rows, []);
  });

  test('registry-driven code rule: dot_tools covered, entity_species STOP on mismatch', async () => {
    const cov = await db.pool.query<{ collection_name: string; rule_source: string; row_count: string; failing: string; status: string }>(
      `SELECT collection_name, rule_source, row_count, failing, status FROM v_birth_code_rule_coverage
        WHERE collection_name IN ('dot_tools', 'entity_species') ORDER BY collection_name`);
    const f = WORLD_FIGURES.test;
    assert.deepEqual(cov.rows.map((r) => [r.collection_name, r.rule_source, Number(r.failing), r.status]), [
      ['dot_tools', 'registry', 0, 'OK'],
      ['entity_species', 'entry-rule', f.entitySpecies.codeRuleFailing, 'STOP'],
    ]);
    // fn_pre_birth_check check (3) now reads the registry: a kebab-case DOT code passes it.
    const c = await db.pool.query(`SELECT check_name FROM fn_pre_birth_check('dot_tools', 'dot-kb-sync', NULL, 'x') WHERE check_no = 3`);
    assert.equal(c.rowCount, 0);
    const s = await db.pool.query(`SELECT check_name FROM fn_pre_birth_check('entity_species', 'sp-lower-1', NULL, 'x') WHERE check_no = 3`);
    assert.equal(s.rowCount, 1);
  });

  test('break-glass is an operator act on a parked permit: it admits a code outside the family rule, once', async () => {
    const code = 'DOT_LEGACY_7';
    const key = `wf:dot_tools:${code}`;
    const requested = (await worker.query(`SELECT permit_id FROM fn_permit_request($1, $2, 'dot_tools', 600, 'wf', 'wf:x', 'run-1')`, [key, code])).rows[0].permit_id;
    // The worker cannot open the ledger entry, whatever approval it makes up.
    await rejectsWith(worker.query(`SELECT fn_break_glass_open($1, 'dot_tools', 'op@test', 'made up', 'APR-0', $2, NULL)`, [code, requested]), '42501');
    const bg = (await operator.query(`SELECT (fn_break_glass_open($1, 'dot_tools', 'op@test', 'legacy code, ticket OPS-9', 'APR-9', $2, NULL)).*`, [code, requested])).rows[0];
    assert.equal(bg.opened_by, operatorLogin, 'who really opened it');
    assert.equal(bg.workflow_id, 'wf:x', 'the stuck birth it is bound to');
    assert.deepEqual(bg.blockers.map((b: { kind: string }) => b.kind), ['code_rule'], 'the blockers it was opened against');
    await rejectsWith(operator.query(`SELECT fn_break_glass_open($1, 'dot_tools', 'op@test', 'second', 'APR-10', $2, NULL)`, [code, requested]), 'BG409', /already has break-glass entry/);
    const permitId = (await worker.query(`SELECT permit_id, state FROM fn_permit_issue($1, $2, 'dot_tools', 600, 'wf', 'wf:x', 'run-1')`, [key, code])).rows[0].permit_id;
    assert.equal(permitId, requested);
    await worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [permitId]);
    const p = await db.pool.query(`SELECT state, break_glass, break_glass_id FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
    assert.deepEqual(p.rows[0], { state: 'FINALIZED', break_glass: true, break_glass_id: bg.break_glass_id });
    const b = await db.pool.query(`SELECT jsonb_profile -> 'admission' ->> 'break_glass' AS bg FROM birth_registry WHERE entity_code = $1`, [code]);
    assert.deepEqual(b.rows, [{ bg: 'true' }]);
    const row = await db.pool.query(`SELECT name, created_by FROM dot_tools WHERE code = $1`, [code]);
    assert.deepEqual(row.rows, [{ name: code, created_by: 'birthgate_worker' }], 'name defaults to the code; the caller is recorded');
    // The entry exempted that permit only: another permit for another out-of-rule code is refused.
    const other = await issuePermit(worker, 'DOT_LEGACY_8');
    await rejectsWith(worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{}')`, [other]), 'BG403', /family code rule/);
  });

  test('admission rollback removes the row and retires the birth, idempotently', async () => {
    const code = newDotCode('rollback');
    const permitId = await issuePermit(worker, code);
    await rejectsWith(worker.query(`SELECT fn_admission_rollback($1, 'op', 'undo')`, [permitId]), 'BG428', /RESERVED/);
    await worker.query(`SELECT * FROM fn_admission_insert_dot_tools($1, '{"name":"to undo"}')`, [permitId]);
    const id1 = (await worker.query(`SELECT fn_admission_rollback($1, 'op', 'undo') AS id`, [permitId])).rows[0].id;
    const id2 = (await worker.query(`SELECT fn_admission_rollback($1, 'op', 'undo again') AS id`, [permitId])).rows[0].id;
    assert.equal(id1, id2);
    const b = await db.pool.query(`SELECT id, status FROM birth_registry WHERE entity_code = $1 AND collection_name = 'dot_tools'`, [code]);
    assert.deepEqual(b.rows, [{ id: id1, status: 'retired' }]);
    assert.equal((await db.pool.query(`SELECT 1 FROM dot_tools WHERE code = $1`, [code])).rowCount, 0);
    const st = await worker.query(`SELECT fn_admission_state($1) AS s`, [permitId]);
    assert.equal(st.rows[0].s.permit.state, 'FINALIZED');
    assert.equal(st.rows[0].s.birth_status, 'retired');
    const t = await db.pool.query(`SELECT from_status, to_status FROM birth_status_transition WHERE birth_id = $1`, [id1]);
    assert.deepEqual(t.rows, [{ from_status: 'born', to_status: 'retired' }]);
  });

  test('the status vocabulary CHECK refuses anything but born and retired', async () => {
    await rejectsWith(db.pool.query(`UPDATE birth_registry SET status = 'zombie' WHERE id = (SELECT min(id) FROM birth_registry)`), '23514');
  });

  test('birthgate_worker_drop.sql leaves the worker nothing in this database', async () => {
    await db.pool.query(readSql('roles/birthgate_worker_drop.sql'));
    // The role is cluster-global: other test databases may keep it alive. Either it is gone, or it holds
    // nothing here — checked from the catalogs either way (no branch that asserts nothing).
    const r = await db.pool.query<{ exists: boolean; grants: number; acls: number }>(`
      SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'birthgate_worker') AS exists,
             (SELECT count(*)::int FROM information_schema.role_table_grants WHERE grantee = 'birthgate_worker') AS grants,
             (SELECT count(*)::int FROM pg_proc p, aclexplode(p.proacl) x
               WHERE p.pronamespace = 'public'::regnamespace AND x.grantee = (SELECT oid FROM pg_roles WHERE rolname = 'birthgate_worker')) AS acls`);
    assert.deepEqual({ grants: r.rows[0]!.grants, acls: r.rows[0]!.acls }, { grants: 0, acls: 0 }, `role exists: ${r.rows[0]!.exists}`);
    await installWorkerRole(db.pool); // leave the role as other test files expect it
  });
});
