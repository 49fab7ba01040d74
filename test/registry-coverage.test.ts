// Registry coverage as a STOP (issue 9 item 3, KB-4410 §D.4): meta_catalog and the admission's
// families against the live birth and gate triggers. A mismatch is the hard BLOCK dim
// `registry_coverage` (step 16): it parks admissions, the database gate refuses inserts, no break-glass
// and no rebaseline accepts it — only a repair clears it. SQL-level on the fixture world, then an
// admission on the real Temporal dev server with the real worker.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { admitByCode, breakGlass, retry, status } from '../client/admissions.ts';
import { createPool } from '../db/pool.ts';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { asDirectus, asSuperuser, inRolledBackTxn, preflightBlockers, type Session, tick } from './support/attacker.ts';
import type { FreshDatabase } from './support/db.ts';
import { applyStep, applyStepsSql, packetSteps, rollbackStepsSql, verifyStep } from './support/packet-sql.ts';
import {
  installOperatorLogin, installWorkerRole, issuePermit, newDotCode, operatorUrl, rebaseline, rejectsWith, worldDatabase, workerUrl,
} from './support/packet-world.ts';
import { eventually } from './support/temporal.ts';

type Q = Pick<pg.Pool | pg.PoolClient | pg.Client, 'query'>;
type Mismatch = { collection_name: string; mismatch: string; detail: string };

const LAST_STEP = Math.max(...packetSteps().map((s) => s.meta.step));
const admitSql = `SELECT row_id::text FROM fn_admission_insert_dot_tools($1, '{}'::jsonb)`;
/** kb_articles' one AFTER INSERT birth trigger (the baseline's 40-collections.sql; no legacy duplicate). */
const dropKbBirth = 'DROP TRIGGER trg_birth_kb_articles ON public.kb_articles';
const restoreKbBirth = `CREATE TRIGGER trg_birth_kb_articles AFTER INSERT ON public.kb_articles
                         FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto('code')`;

async function mismatches(q: Q): Promise<Mismatch[]> {
  return (await q.query<Mismatch>('SELECT collection_name, mismatch, detail FROM fn_registry_coverage() ORDER BY mismatch, collection_name, detail')).rows;
}

async function coverageDim(q: Q): Promise<{ block_count: number; detail: string; hard: boolean; computed: boolean }> {
  const r = await q.query<{ block_count: number; detail: string; hard: boolean; computed: boolean }>(
    `SELECT block_count::int, detail, hard, computed FROM fn_admission_dims() WHERE dim = 'registry_coverage'`);
  assert.equal(r.rows.length, 1, 'registry_coverage is one of the admission\'s dims');
  return r.rows[0]!;
}

describe('registry_coverage on the fixture world (SQL)', () => {
  let db: FreshDatabase;
  let su: Session;
  let worker: pg.Pool;
  let operator: pg.Pool;

  before(async () => {
    db = await worldDatabase('regcov');
    await applyStepsSql(db.pool, LAST_STEP);
    await installWorkerRole(db.pool);
    await installOperatorLogin(db.pool);
    su = await asSuperuser(db.url);
    worker = createPool(workerUrl(db.url), { max: 2, applicationName: 'test-worker' });
    operator = createPool(operatorUrl(db.url), { max: 1, applicationName: 'test-operator' });
  });
  after(async () => {
    await su?.end();
    await worker?.end();
    await operator?.end();
    await db?.dispose();
  });

  test('the estate as found is covered after the packet: the 166 bindings and the 16 gates are all registered, the dim is 0', async () => {
    const figures = WORLD_FIGURES.test;
    // What the dim checks is really there: the hand-made lists of KB-4410 §A, each table managed in meta_catalog.
    const bound = await db.pool.query<{ bindings: number; gated: number; unmanaged: number }>(`
      SELECT (SELECT count(*)::int FROM pg_trigger WHERE NOT tgisinternal AND tgfoid = 'fn_birth_registry_auto'::regproc) AS bindings,
             (SELECT count(DISTINCT tgrelid)::int FROM pg_trigger WHERE NOT tgisinternal AND tgfoid = 'fn_birth_gate'::regproc) AS gated,
             (SELECT count(*)::int FROM pg_trigger t
               WHERE NOT t.tgisinternal AND t.tgfoid IN ('fn_birth_registry_auto'::regproc, 'fn_birth_gate'::regproc)
                 AND NOT EXISTS (SELECT 1 FROM meta_catalog mc WHERE mc.managed AND format('public.%I', mc.collection_name)::regclass = t.tgrelid)) AS unmanaged`);
    assert.deepEqual(bound.rows[0], { bindings: figures.birthAutoTriggers, gated: figures.birthGateTables, unmanaged: 0 });
    assert.deepEqual(await mismatches(db.pool), []);
    assert.deepEqual(await coverageDim(db.pool), { block_count: 0, detail: 'none', hard: true, computed: true });
    assert.deepEqual(await tick(worker), [], 'nothing blocks on the world as loaded and applied');
  });

  test('every kind of mismatch is named: missing table or birth trigger, a binding, gate or permit gate the registry does not know, a family without its gate', async () => {
    await inRolledBackTxn(su.c, async () => {
      // Registered, not born: kb_articles loses its only AFTER INSERT birth; tags loses one of its two (still covered).
      await su.c.query(dropKbBirth);
      await su.c.query('DROP TRIGGER trg_birth_tags ON public.tags');
      // An id-keyed birth reading another field than the registry's id_field.
      await su.c.query('DROP TRIGGER trg_birth_id_pivot_results ON public.pivot_results');
      await su.c.query(`CREATE TRIGGER trg_birth_id_pivot_results AFTER INSERT ON public.pivot_results
                          FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto_id('pivot_code')`);
      // Registered, no table.
      await su.c.query(`INSERT INTO meta_catalog (collection_name, birth_mode, code_field) VALUES ('ghost_collection', 'code', 'code')`);
      // Gated and born, never registered; and carrying the admission's permit gate.
      await su.c.query('CREATE TABLE public.stray_collection (id bigint, code varchar, name varchar)');
      await su.c.query(`CREATE TRIGGER trg_birth_stray AFTER INSERT ON public.stray_collection FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto('code')`);
      await su.c.query('CREATE TRIGGER trg_before_birth_gate_stray BEFORE INSERT ON public.stray_collection FOR EACH ROW EXECUTE FUNCTION fn_birth_gate()');
      await su.c.query('CREATE TRIGGER trg_permit_gate_stray BEFORE INSERT ON public.stray_collection FOR EACH ROW EXECUTE FUNCTION fn_dot_tools_permit_gate()');
      // Gated and born, no longer managed.
      await su.c.query(`UPDATE meta_catalog SET managed = false WHERE collection_name = 'laws'`);
      // A birth binding outside public births rows under a registered name.
      await su.c.query('CREATE SCHEMA bg_shadow');
      await su.c.query('CREATE TABLE bg_shadow.dot_tools (id bigint, code varchar)');
      await su.c.query(`CREATE TRIGGER trg_birth_shadow AFTER INSERT ON bg_shadow.dot_tools FOR EACH ROW EXECUTE FUNCTION fn_birth_registry_auto('code')`);
      // The flagged family loses its TRUNCATE guard, and its finalize is no longer deferred.
      await su.c.query('DROP TRIGGER trg_permit_guard_truncate_dot_tools ON public.dot_tools');
      await su.c.query('DROP TRIGGER trg_dt_finalize ON public.dot_tools');
      await su.c.query('CREATE TRIGGER trg_dt_finalize AFTER INSERT ON public.dot_tools FOR EACH ROW EXECUTE FUNCTION fn_dt_finalize()');

      const rows = await mismatches(su.c);
      assert.deepEqual(rows.map((m) => [m.mismatch, m.collection_name]), [
        ['MISSING_BIRTH_TRIGGER', 'kb_articles'],
        ['MISSING_BIRTH_TRIGGER', 'pivot_results'],
        ['MISSING_TABLE', 'ghost_collection'],
        ['UNGATED_FAMILY', 'dot_tools'],
        ['UNGATED_FAMILY', 'dot_tools'],
        ['UNREGISTERED_BIRTH_TRIGGER', 'dot_tools'],
        ['UNREGISTERED_BIRTH_TRIGGER', 'laws'],
        ['UNREGISTERED_BIRTH_TRIGGER', 'laws'],
        ['UNREGISTERED_BIRTH_TRIGGER', 'pivot_results'],
        ['UNREGISTERED_BIRTH_TRIGGER', 'stray_collection'],
        ['UNREGISTERED_GATE', 'laws'],
        ['UNREGISTERED_GATE', 'stray_collection'],
        ['UNREGISTERED_PERMIT_GATE', 'stray_collection'],
      ]);
      const detail = (kind: string, coll: string) => rows.filter((m) => m.mismatch === kind && m.collection_name === coll).map((m) => m.detail).join(' | ');
      assert.match(detail('MISSING_BIRTH_TRIGGER', 'kb_articles'), /no AFTER INSERT FOR EACH ROW trigger calls fn_birth_registry_auto\('code'\); bound: trg_birth_upd_kb_articles .* not AFTER INSERT/);
      assert.match(detail('UNREGISTERED_BIRTH_TRIGGER', 'pivot_results'), /fn_birth_registry_auto_id\('pivot_code'\), but meta_catalog says field 'id'/);
      assert.match(detail('UNREGISTERED_BIRTH_TRIGGER', 'dot_tools'), /trg_birth_shadow on bg_shadow\.dot_tools .* the registry names tables in public only/);
      assert.match(detail('UNREGISTERED_BIRTH_TRIGGER', 'laws'), /meta_catalog does not manage it/);
      assert.match(detail('UNREGISTERED_GATE', 'stray_collection'), /fn_birth_gate\(\), but meta_catalog does not register it/);
      assert.match(detail('UNREGISTERED_PERMIT_GATE', 'stray_collection'), /trg_permit_gate_stray .* it is no admission family/);
      assert.match(detail('UNGATED_FAMILY', 'dot_tools'), /has no finalize \(deferred constraint trigger AFTER INSERT\) of birthgate_owner's/);
      assert.match(detail('UNGATED_FAMILY', 'dot_tools'), /has no row guard \(BEFORE TRUNCATE\) of birthgate_owner's/);

      // The dim counts them and names each one; it is hard, and the tick reports it.
      const dim = await coverageDim(su.c);
      assert.equal(dim.block_count, rows.length);
      assert.ok(dim.hard && dim.computed);
      for (const m of rows) assert.ok(dim.detail.includes(`${m.mismatch} ${m.collection_name}: ${m.detail}`), `detail names ${m.mismatch} ${m.collection_name}`);
      const findings = await tick(su.c);
      assert.deepEqual(findings.find((f) => f.dim === 'registry_coverage')?.block_count, String(rows.length));
      assert.ok((await su.c.query<{ findings: number }>('SELECT findings FROM birth_admission_guard')).rows[0]!.findings >= rows.length,
        'the guard the database gate reads counts them');
    });
    assert.deepEqual(await mismatches(db.pool), []);
  });

  test('a coverage hole is a hard STOP: the gate refuses a permitted insert, break-glass is refused, and a rebaseline does not accept it', async () => {
    assert.deepEqual(await tick(worker), [], 'precondition: clean');
    await db.pool.query(dropKbBirth);
    try {
      // A dropped trigger is DDL and a catalog change: gate_drift sees it too. An operator may accept the
      // catalog change; the hole stays.
      assert.deepEqual((await tick(worker)).map((f) => f.dim), ['gate_drift', 'registry_coverage']);
      assert.equal(await rebaseline(operator, 'test: accept the catalog, not the hole'), 1);
      const findings = await tick(worker);
      assert.deepEqual(findings.map((f) => [f.dim, f.block_count, f.hard]), [['registry_coverage', '1', true]]);
      assert.match(findings[0]!.detail, /^MISSING_BIRTH_TRIGGER kb_articles: no AFTER INSERT FOR EACH ROW trigger calls fn_birth_registry_auto\('code'\)/);

      // The worker's preflight: one hard blocker, the dim.
      const blockers = await preflightBlockers(worker, newDotCode('regcov-pre'));
      assert.deepEqual(blockers.map((b) => [b.kind, b.hard]), [['block_dim', true]]);
      assert.match(blockers[0]!.detail, /^registry_coverage=1: MISSING_BIRTH_TRIGGER kb_articles/);

      // The database gate refuses a permitted insert, and nothing is written.
      const code = newDotCode('regcov-gated');
      const permitId = await issuePermit(worker, code);
      await rejectsWith(worker.query(admitSql, [permitId]), 'BG423', /registry_coverage=1: MISSING_BIRTH_TRIGGER kb_articles/);
      assert.equal((await db.pool.query('SELECT count(*)::int AS n FROM dot_tools WHERE code = $1', [code])).rows[0].n, 0);
      assert.deepEqual((await db.pool.query('SELECT state FROM birth_admission_permit WHERE permit_id = $1', [permitId])).rows, [{ state: 'RESERVED' }]);
      await worker.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'test', 'coverage drill')`, [permitId]);

      // No break-glass past it: an operator's entry for a stuck birth's REQUESTED permit is refused.
      const stuck = newDotCode('regcov-glass');
      const requested = (await worker.query<{ permit_id: string }>(
        `SELECT permit_id::text FROM fn_permit_request($1, $2, 'dot_tools', 600, 'test', $3)`, [`wf:dot_tools:${stuck}`, stuck, `wf:${stuck}`])).rows[0]!.permit_id;
      await rejectsWith(operator.query(`SELECT fn_break_glass_open($1, 'dot_tools', 'ops@test', 'coverage hole', 'APR-1', $2, $3)`,
        [stuck, requested, `wf:${stuck}`]), 'BG423');
      assert.equal((await db.pool.query('SELECT count(*)::int AS n FROM birth_break_glass WHERE permit_id = $1', [requested])).rows[0].n, 0);
      await worker.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'test', 'coverage drill')`, [requested]);
    } finally {
      await db.pool.query(restoreKbBirth);
    }
    // Repaired: the restore is itself a catalog change (gate_drift) until accepted; the hole is gone.
    assert.deepEqual((await tick(worker)).map((f) => f.dim), ['gate_drift']);
    assert.equal(await rebaseline(operator, 'test: birth trigger restored'), 0);
    assert.deepEqual(await tick(worker), []);
  });

  test('the dim cannot be switched off through birth_admission_dim (deleted, disabled, made soft, redirected)', async () => {
    for (const change of [`DELETE FROM birth_admission_dim WHERE dim = 'registry_coverage'`,
                          `UPDATE birth_admission_dim SET enabled = false WHERE dim = 'registry_coverage'`,
                          `UPDATE birth_admission_dim SET hard = false WHERE dim = 'registry_coverage'`,
                          `UPDATE birth_admission_dim SET count_fn = 'public.fn_dim_permit_log_mismatch()' WHERE dim = 'registry_coverage'`]) {
      await inRolledBackTxn(su.c, async () => {
        await su.c.query(dropKbBirth);
        await su.c.query(change);
        const dim = (await tick(su.c)).find((f) => f.dim === 'registry_coverage');
        assert.deepEqual(dim && [dim.block_count, dim.hard], ['1', true], change);
      });
    }
  });

  test('only definer code computes it: the worker, the estate owner and an operator cannot run or redirect the dim; an operator may list the mismatches', async () => {
    const fns = await db.pool.query<{ proname: string; owner: string; prosecdef: boolean; proconfig: string[] }>(
      `SELECT proname, pg_get_userbyid(proowner) AS owner, prosecdef, proconfig FROM pg_proc
        WHERE pronamespace = 'public'::regnamespace AND proname IN ('fn_registry_coverage', 'fn_dim_registry_coverage') ORDER BY proname`);
    for (const f of fns.rows) {
      assert.equal(f.owner, 'birthgate_owner', f.proname);
      assert.equal(f.prosecdef, true, f.proname);
      assert.ok(f.proconfig.includes('search_path=pg_catalog, pg_temp'), `${f.proname}: ${f.proconfig.join(';')}`);
    }
    assert.equal(fns.rows.length, 2);

    await rejectsWith(worker.query('SELECT * FROM fn_dim_registry_coverage()'), '42501', /permission denied for function fn_dim_registry_coverage/);
    await rejectsWith(worker.query('SELECT * FROM fn_registry_coverage()'), '42501', /permission denied for function fn_registry_coverage/);
    await rejectsWith(operator.query('SELECT * FROM fn_dim_registry_coverage()'), '42501', /permission denied/);
    assert.deepEqual((await operator.query('SELECT * FROM fn_registry_coverage()')).rows, []);
    const directus = await asDirectus(db.url);
    try {
      await rejectsWith(directus.c.query('SELECT * FROM fn_dim_registry_coverage()'), '42501', /permission denied/);
      await rejectsWith(directus.c.query('SELECT * FROM fn_registry_coverage()'), '42501', /permission denied/);
      await rejectsWith(directus.c.query(`UPDATE birth_admission_dim SET hard = false WHERE dim = 'registry_coverage'`), '42501', /permission denied for table birth_admission_dim/);
      // A birth binding the estate owner plants on a table of its own outside public (its temp schema)
      // is seen while it exists. DDL in a temp schema is not in the DDL ledger, so the preflight may reuse
      // the guard's answer for up to reuse_for; the drift tick always computes, and the preflight follows.
      await directus.c.query('CREATE TEMP TABLE dot_tools (id bigint, code varchar)');
      await directus.c.query(`CREATE TRIGGER bg_temp_birth AFTER INSERT ON pg_temp.dot_tools FOR EACH ROW EXECUTE FUNCTION public.fn_birth_registry_auto('code')`);
      assert.ok((await tick(worker)).some((f) => f.dim === 'registry_coverage' && f.block_count === '1'));
      const blockers = await preflightBlockers(worker, newDotCode('regcov-temp'));
      assert.ok(blockers.some((b) => b.hard && /^registry_coverage=1: UNREGISTERED_BIRTH_TRIGGER dot_tools: bg_temp_birth on pg_temp_\d+\.dot_tools/.test(b.detail)),
        JSON.stringify(blockers));
    } finally {
      await directus.end();
    }
    // Gone with its session: nothing left to report, nothing to accept.
    await eventually(async () => ((await tick(worker)).length === 0 ? true : undefined), 'the temp table gone with its session', 10_000);
  });

  test('step 16\'s rollback drops the dim and its listing; applied again they are back and the estate is covered', async () => {
    await rollbackStepsSql(db.pool, 15);
    const gone = await db.pool.query(`SELECT to_regprocedure('public.fn_dim_registry_coverage()') AS d, to_regprocedure('public.fn_registry_coverage()') AS l`);
    assert.deepEqual(gone.rows[0], { d: null, l: null });
    assert.equal((await verifyStep(db.pool, 16)).ok, false);
    for (const s of packetSteps().filter((p) => p.meta.step >= 16)) await applyStep(db.pool, s.meta.step);
    assert.match((await verifyStep(db.pool, 16)).detail, /registry coverage=t /);
    assert.deepEqual(await coverageDim(db.pool), { block_count: 0, detail: 'none', hard: true, computed: true });
  });
});

describe('an admission parks on registry_coverage (real worker)', () => {
  let h: AdmissionHarness;
  before(async () => (h = await admissionHarness('regcov_admit')));
  after(async () => h?.stop());

  const admit = (code: string, wait = true) =>
    admitByCode(h.client, { code, fields: { name: `tool ${code}` }, requestedBy: 'test' }, { taskQueue: h.taskQueue, wait });
  const operator = { actor: 'ops@birthgate.test', reason: 'coverage hole repaired (test)' };

  test('a missing birth trigger parks the admission BLOCKED on registry_coverage; break-glass is refused; repaired and retried, it is admitted', async () => {
    assert.deepEqual(await tick(h.db.pool), [], 'the packet\'s estate is covered before the drill');
    const code = freshCode();
    await h.db.pool.query(dropKbBirth);
    // Accept the catalog change (gate_drift), so the only thing that can park it is the coverage hole.
    assert.equal(await rebaseline(h.db.pool, 'test: catalog accepted, the hole is not'), 1);
    try {
      await admit(code, false);
      const parked = await eventually(async () => {
        const s = (await status(h.client, { code })).state;
        return s?.stage === 'BLOCKED' ? s : undefined;
      }, 'BLOCKED on registry_coverage');
      assert.deepEqual(parked.blockers.map((b) => [b.kind, b.hard]), [['block_dim', true]]);
      assert.match(parked.blockers[0]!.detail, /^registry_coverage=1: MISSING_BIRTH_TRIGGER kb_articles/);
      await assert.rejects(breakGlass(h.client, h.db.pool, { code }, { ...operator, approvalId: 'APR-REGCOV' }),
        (err: pg.DatabaseError) => err.code === 'BG423');
      const w = await written(h.db.pool, code);
      assert.deepEqual({ rows: w.rows, births: w.births, permits: w.permits.map((p) => p.state), breakGlass: w.breakGlass },
        { rows: 0, births: [], permits: ['REQUESTED'], breakGlass: 0 }, 'parked: nothing written but its place in the ledger');
    } finally {
      await h.db.pool.query(restoreKbBirth);
    }
    // The restore is DDL on a governed table's trigger set: the retried preflight sees gate_drift, not the hole.
    await retry(h.client, { code }, { actor: operator.actor, reason: 'trigger restored' });
    const still = await eventually(async () => {
      const s = (await status(h.client, { code })).state;
      return s?.decisions.length === 1 && s.stage === 'BLOCKED' ? s : undefined;
    }, 'retry settled, BLOCKED on gate_drift only');
    assert.equal(still.blockers.length, 1);
    assert.match(still.blockers[0]!.detail, /^gate_drift=\d+: .*CHANGED trigger_set public\.kb_articles/);
    assert.doesNotMatch(still.blockers[0]!.detail, /registry_coverage/);
    assert.equal(await rebaseline(h.db.pool, 'test: birth trigger restored'), 0);
    await retry(h.client, { code }, { actor: operator.actor, reason: 'restore accepted by the owner' });
    const { result } = await admit(code);
    assert.equal(result?.stage, 'FINALIZED');
    assert.equal(result?.breakGlass, false);
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.equal(w.births.length, 1);
    assert.deepEqual(w.permits.map((p) => p.state), ['FINALIZED']);
  });
});
