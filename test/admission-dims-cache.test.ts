// Issue 8's owed security tests for the admission's dims cache: fn_admission_dims_recent hands the
// preflight the BLOCK dims stored in birth_admission_guard while they are fresh (SECURITY.md "What is
// only detected"). As the attacker sees it: who may compute and store the dims, that no role but the
// definer path writes the stored answer, that a search path or planted operators never change what
// "fresh" means, that a forged all-clear never admits past a real block (the real worker's admission
// parks), and that a superuser's forgery stays bounded — never more than 60 s, never dated ahead — and
// is a drift finding when it leaves those bounds. Every attempt runs as the role that makes it; every
// verdict is read back from the database.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { admitByCode, cancel, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool, withClient } from '../db/pool.ts';
import { admissionHarness, type AdmissionHarness, freshCode, untilStage, written } from './support/admission-harness.ts';
import { asDirectus, asWorker, attackNotices, demoteDirectus, preflightBlockers, tick, type Session } from './support/attacker.ts';
import { testEnv } from './support/env.ts';
import { eventually } from './support/temporal.ts';
import { installOperatorLogin, issuePermit, operatorUrl, rebaseline, rejectsWith } from './support/packet-world.ts';

const admitSql = `SELECT row_id::text, entity_code FROM fn_admission_insert_dot_tools($1, $2::jsonb)`;
const operator = { actor: 'ops@birthgate.test', reason: 'dims-cache drill over (test)' };

// PUBLIC as an attacker: a login that is granted nothing (cluster-global, so unique to this process).
const publicLogin = `bg_dims_public_${process.pid}`;
const publicPassword = 'bg-dims-public-test-pw';

type Q = Pick<pg.Pool | pg.Client, 'query'>;
type Guard = { findings: number; dims: Array<{ dim: string }> | null; computed_at: Date; reuse_for: string; ddl_seen: string | null; xmin: string };

const guard = async (q: Q): Promise<Guard> =>
  (await q.query<Guard>(`SELECT findings, dims, computed_at, reuse_for::text, ddl_seen::text, xmin::text FROM birth_admission_guard`)).rows[0]!;
const storedDims = (g: Guard): string[] => (g.dims ?? []).map((d) => d.dim);
const blockerText = (bs: Array<{ detail: string }>): string => bs.map((b) => b.detail).join('; ');

describe('the admission dims cache as the attacker sees it', () => {
  let h: AdmissionHarness;
  let su: pg.Pool;
  let operatorPool: pg.Pool;
  let publicPool: pg.Pool;
  let directus: Session;

  before(async () => {
    h = await admissionHarness('dims_cache');
    su = h.db.pool;
    await installOperatorLogin(su);
    await withClient(testEnv().adminUrl, async (c) => {
      await c.query('BEGIN');
      await c.query('LOCK TABLE pg_catalog.pg_authid IN SHARE ROW EXCLUSIVE MODE');
      await c.query(`DROP ROLE IF EXISTS ${publicLogin}`);
      await c.query(`CREATE ROLE ${publicLogin} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${publicPassword}'`);
      await c.query('COMMIT');
    });
    const pub = new URL(h.db.url);
    pub.username = publicLogin;
    pub.password = publicPassword;
    operatorPool = createPool(operatorUrl(h.db.url), { max: 1, applicationName: 'test-dims-operator' });
    publicPool = createPool(pub.toString(), { max: 1, applicationName: 'test-dims-public' });
    for (const p of [operatorPool, publicPool]) p.on('error', () => undefined);
    directus = await asDirectus(h.db.url);
  });
  after(async () => {
    await directus?.end();
    if (h) await demoteDirectus(su);
    await operatorPool?.end();
    await publicPool?.end();
    await h?.stop();
    await withClient(testEnv().adminUrl, (c) => c.query(`DROP ROLE IF EXISTS ${publicLogin}`)).catch(() => undefined);
  });

  /** Each non-superuser attacker, as a queryable session of its own role. */
  const attackers = (): Array<[string, Q]> =>
    [['birthgate_worker', h.workerPool], ['directus', directus.c], ['birthgate_operator member', operatorPool], ['PUBLIC', publicPool]];

  /**
   * A real BLOCK dim no DDL records (the kind the cache may carry late): a permit moved by a superuser's
   * UPDATE without its logged move — permit_log_mismatch. Stored in the guard by a worker's drift tick.
   */
  async function realBlock(): Promise<{ permitId: string; repair(): Promise<void> }> {
    assert.deepEqual(await tick(h.workerPool), [], 'precondition: the drift watch is clean');
    const permitId = await issuePermit(h.workerPool, freshCode());
    await su.query(`UPDATE birth_admission_permit SET state = 'CANCELLED' WHERE permit_id = $1`, [permitId]);
    assert.deepEqual((await tick(h.workerPool)).map((f) => f.dim), ['permit_log_mismatch']);
    assert.deepEqual(storedDims(await guard(su)), ['permit_log_mismatch'], 'the guard stores the block');
    return {
      permitId,
      async repair() {
        await su.query(`UPDATE birth_admission_permit SET state = 'RESERVED' WHERE permit_id = $1`, [permitId]);
        await h.workerPool.query(`SELECT fn_permit_withdraw($1, 'CANCELLED', 'test', 'dims-cache drill over')`, [permitId]);
        await su.query(`UPDATE birth_admission_guard SET reuse_for = '5 seconds'`);
        assert.deepEqual(await tick(h.workerPool), [], 'repaired: the drift watch is clean again');
      },
    };
  }

  /** A superuser's hand-written answer in the guard (the fields the preflight's reuse reads). */
  const forge = (set: string) =>
    su.query(`UPDATE birth_admission_guard SET ${set}, ddl_seen = (SELECT max(ddl_id) FROM birth_ddl_ledger)`);

  test('who may compute and store the dims: EXECUTE on every function that writes birth_admission_guard, by role; none takes the dims as input', async () => {
    // Every function whose body writes the guard, and every function that calls one of them.
    const { rows } = await su.query<{ fn: string; args: string }>(`
      WITH RECURSIVE fns AS (
        SELECT p.oid, p.proname::text AS name, p.prosrc FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
      ), writer(oid, name) AS (
        SELECT f.oid, f.name FROM fns f WHERE f.prosrc ~* 'update\\s+public\\.birth_admission_guard'
        UNION
        SELECT f.oid, f.name FROM fns f JOIN writer w ON f.prosrc ~ ('public\\.' || w.name || '\\(') AND f.oid <> w.oid
      )
      SELECT DISTINCT w.oid::regprocedure::text AS fn, pg_get_function_arguments(w.oid) AS args FROM writer w ORDER BY 1`);
    const writers = rows.map((r) => r.fn);
    assert.ok(writers.includes('fn_admission_dims_recent()') && writers.includes('fn_admission_dims()'), writers.join(', '));
    assert.deepEqual(rows.filter((r) => /jsonb|dims|findings/i.test(r.args)).map((r) => r.fn), [],
      'no writer takes dims or findings from its caller: each computes them');

    const may = async (role: string) => (await su.query<{ fn: string }>(
      `SELECT fn FROM unnest($1::text[]) fn WHERE has_function_privilege($2, fn::regprocedure, 'EXECUTE') ORDER BY fn`, [writers, role])).rows.map((r) => r.fn);
    assert.deepEqual(await may('birthgate_worker'),
      ['fn_admission_assert_safe(text)', 'fn_admission_open(text,text,text,integer,text,text,text)', 'fn_admission_preflight(text,text)',
        'fn_drift_tick()', 'fn_drift_watch_tick(text)']);
    // The break-glass re-reads the hard blockers through the preflight (which may compute and store them).
    assert.deepEqual(await may('birthgate_test_operator'),
      ['fn_break_glass_open(text,text,text,text,text,bigint,text)', 'fn_drift_accept(text,text,text)', 'fn_drift_rebaseline(text,text,text)']);
    assert.deepEqual(await may('directus'), []);
    assert.deepEqual(await may(publicLogin), []);

    // And as each role, the calls themselves.
    for (const [who, q] of attackers()) {
      for (const fn of ['fn_admission_dims_recent()', 'fn_admission_dims()', 'fn_admission_dim_changed()']) {
        // In the select list: a trigger function in FROM is refused for its return type before any ACL check.
        await rejectsWith(q.query(`SELECT ${fn}`), '42501', /permission denied for function/).catch((e: Error) => {
          throw new Error(`${who} calling ${fn}: ${e.message}`);
        });
      }
    }
    for (const [who, q] of attackers().filter(([w]) => w !== 'birthgate_worker')) {
      for (const sql of ['SELECT * FROM fn_drift_tick()', `SELECT fn_admission_preflight('DOT-1', 'dot_tools')`, `SELECT fn_drift_watch_tick('x')`]) {
        await rejectsWith(q.query(sql), '42501', /permission denied for function/).catch((e: Error) => { throw new Error(`${who}: ${sql}: ${e.message}`); });
      }
    }
    for (const [who, q] of attackers().filter(([w]) => w !== 'birthgate_operator member')) {
      await rejectsWith(q.query(`SELECT * FROM fn_drift_rebaseline('x', 'y', 'z')`), '42501', /permission denied/)
        .catch((e: Error) => { throw new Error(`${who}: ${e.message}`); });
    }
  });

  test('no role but the definer path writes the stored answer, and a forged all-clear admits nothing: the real worker\'s admission parks BLOCKED, nothing written', async () => {
    const block = await realBlock();
    const code = freshCode();
    try {
      const before = await guard(su);
      for (const [who, q] of attackers()) {
        const refused = async (sql: string, re: RegExp) =>
          rejectsWith(q.query(sql), '42501', re).catch((e: Error) => { throw new Error(`${who}: ${sql}: ${e.message}`); });
        await refused(`UPDATE birth_admission_guard SET findings = 0, detail = 'none', dims = '[]', computed_at = clock_timestamp()`,
          /permission denied for table birth_admission_guard/);
        await refused(`INSERT INTO birth_admission_guard (singleton, dims) VALUES (true, '[]') ON CONFLICT (singleton) DO UPDATE SET dims = '[]'`,
          /permission denied for table birth_admission_guard/);
        await refused(`DELETE FROM birth_admission_guard`, /permission denied for table birth_admission_guard/);
        await refused(`TRUNCATE birth_admission_guard`, /permission denied for table birth_admission_guard/);
        // The dim policy (its trigger would clear the stored dims) and the owner's rights are not theirs either.
        await refused(`UPDATE birth_admission_dim SET enabled = false`, /permission denied for table birth_admission_dim/);
        await refused(`SET ROLE birthgate_owner`, /permission denied to set role/);
      }
      assert.deepEqual(await guard(su), before, 'the guard row is untouched (same xmin)');

      // What each role's own lever does: the worker's computations and the operator's rebaseline store
      // the truth; an operator's rebaseline accepts catalog changes, never a data-level block.
      await h.workerPool.query(`SELECT fn_admission_preflight($1, 'dot_tools')`, [freshCode()]);
      await h.workerPool.query(`SELECT * FROM fn_admission_assert_safe('birth_admit')`).catch(() => undefined);
      await h.workerPool.query(`SELECT fn_drift_watch_tick('test')`);
      assert.equal(await rebaseline(operatorPool, 'test: an operator tries to clear the dims'), 1);
      const after = await guard(su);
      assert.deepEqual(storedDims(after), ['permit_log_mismatch']);
      assert.equal(after.findings, 1);

      // A real admission through the real worker: preflight BLOCKED on the stored block.
      await admitByCode(h.client, { code, fields: { name: `tool ${code}` }, requestedBy: 'test' }, { taskQueue: h.taskQueue, wait: false });
      const parked = await untilStage(h.client, code, 'BLOCKED');
      assert.match(blockerText(parked.blockers), new RegExp(`permit_log_mismatch=1: permit ${block.permitId} CANCELLED`));
      assert.ok(parked.blockers.every((b) => b.hard));
      const w = await written(su, code);
      assert.equal(w.rows, 0, 'no dot_tools row');
      assert.deepEqual(w.births, [], 'no birth');
      assert.deepEqual(w.permits.map((p) => [p.state, p.row_id, p.birth_id]), [['REQUESTED', null, null]], 'only its place in the ledger');
    } finally {
      await cancel(h.client, { code }, operator).catch(() => undefined);
      await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result().catch(() => undefined);
      await block.repair();
    }
    assert.deepEqual((await written(su, code)).permits.map((p) => p.state), ['CANCELLED']);
  });

  test('planted operators and functions in public, temp tables and a search path of public first never change what fresh means; opened to public, the same function is fooled', async () => {
    const block = await realBlock();
    await su.query('GRANT CREATE ON SCHEMA public TO directus');
    const planted: string[] = [];
    const w = await asWorker(h.db.url);
    try {
      // Everything the freshness test resolves by name, planted by the estate owner to say "fresh".
      const plant = async (sig: string, ret: string, value: string, op?: string) => {
        const fn = `bg_shadow_${planted.length}`;
        await directus.c.query(`CREATE FUNCTION public.${fn}(${sig}) RETURNS ${ret} LANGUAGE plpgsql AS $f$
          BEGIN RAISE WARNING 'bg-attack[${fn}] as %', current_user; RETURN ${value}; END $f$`);
        planted.push(`FUNCTION public.${fn}(${sig})`);
        if (op) {
          const [l, r] = sig.split(',');
          await directus.c.query(`CREATE OPERATOR public.${op} (LEFTARG = ${l}, RIGHTARG = ${r}, FUNCTION = public.${fn})`);
          planted.unshift(`OPERATOR public.${op} (${l}, ${r})`);
        }
      };
      await plant('timestamptz,timestamptz', 'boolean', 'true', '<=');
      await plant('timestamptz,timestamptz', 'boolean', 'true', '>');
      await plant('numeric,numeric', 'boolean', 'true', '<');
      await plant('bigint,bigint', 'boolean', 'true', '=');
      await directus.c.query(`CREATE FUNCTION public.clock_timestamp() RETURNS timestamptz LANGUAGE plpgsql AS $f$
        BEGIN RAISE WARNING 'bg-attack[clock_timestamp] as %', current_user; RETURN pg_catalog.now(); END $f$`);
      planted.push('FUNCTION public.clock_timestamp()');
      await directus.c.query(`CREATE FUNCTION public.jsonb_typeof(jsonb) RETURNS text LANGUAGE plpgsql AS $f$
        BEGIN RAISE WARNING 'bg-attack[jsonb_typeof] as %', current_user; RETURN 'array'; END $f$`);
      planted.push('FUNCTION public.jsonb_typeof(jsonb)');
      // The worker's own session: tables that look fresh and clear in pg_temp, public searched first.
      await w.c.query(`CREATE TEMP TABLE birth_admission_guard AS SELECT true AS singleton, 0 AS findings, 'none'::text AS detail,
                         clock_timestamp() AS computed_at, '[]'::jsonb AS dims, NULL::bigint AS ddl_seen, interval '1 minute' AS reuse_for`);
      await w.c.query(`CREATE TEMP TABLE birth_ddl_ledger (ddl_id bigint)`);
      await w.c.query('SET search_path = public, pg_temp, pg_catalog');
      assert.equal((await w.c.query(`SELECT 2::bigint = 3::bigint AS eq`)).rows[0].eq, true, 'the shadow is live in this session');
      w.notices.length = 0;

      // The last computation said "clear", ten minutes ago: stale, however the names resolve.
      await forge(`dims = '[]', computed_at = clock_timestamp() - interval '10 minutes', reuse_for = '1 minute'`);
      const stale = await guard(su);
      const blockers = await preflightBlockers(w.c, freshCode());
      assert.deepEqual(attackNotices(w), [], 'no planted function or operator ran');
      assert.match(blockerText(blockers), new RegExp(`permit_log_mismatch=1: permit ${block.permitId}`), 'recomputed: the block is seen');
      assert.match(blockerText(blockers), /gate_drift=\d+: .*CHANGED operators/, 'and the planted operators are a finding');
      const recomputed = await guard(su);
      assert.ok(recomputed.computed_at > stale.computed_at, 'the preflight computed and stored the truth');
      assert.ok(storedDims(recomputed).includes('permit_log_mismatch'));

      // Control (the test can fail): the same function with public on its path reuses the stale all-clear.
      const def = async () => (await su.query<{ d: string }>(`SELECT pg_get_functiondef('public.fn_admission_dims_recent()'::regprocedure) AS d`)).rows[0]!.d;
      const pinned = await def();
      await su.query(`ALTER FUNCTION public.fn_admission_dims_recent() SET search_path = public, pg_catalog, pg_temp`);
      try {
        await forge(`dims = '[]', computed_at = clock_timestamp() - interval '10 minutes'`);
        w.notices.length = 0;
        const fooled = await preflightBlockers(w.c, freshCode());
        assert.ok(attackNotices(w).length > 0, 'the planted code ran in the unpinned function');
        assert.doesNotMatch(blockerText(fooled), /permit_log_mismatch/, 'unpinned, the stale all-clear is reused');
      } finally {
        await su.query(`ALTER FUNCTION public.fn_admission_dims_recent() SET search_path = pg_catalog, pg_temp`);
      }
      assert.equal(await def(), pinned, 'the function is back as the packet made it');
    } finally {
      await w.end();
      for (const obj of planted) await directus.c.query(`DROP ${obj}`);
      await su.query('REVOKE CREATE ON SCHEMA public FROM directus');
      assert.equal(await rebaseline(su, 'test: shadowing drill over'), 1, 'only the data-level block is left');
      await block.repair();
    }
  });

  test('a superuser\'s forged answer stays bounded (at most 60 s, never dated ahead) and is a drift finding outside those bounds; the gate never trusts the stored dims', async () => {
    const block = await realBlock();
    const preflight = () => preflightBlockers(h.workerPool, freshCode());
    const seesBlock = async (why: string) =>
      assert.match(blockerText(await preflight()), /permit_log_mismatch=1/, `${why}: recomputed, the block is seen`);
    try {
      // Inside the bounds the superuser's all-clear reaches the preflight (the documented window) —
      // but not the gate, which reads the findings count, not the dims.
      await forge(`dims = '[]', computed_at = clock_timestamp(), reuse_for = '1 minute'`);
      assert.deepEqual(await preflight(), [], 'a fresh forged all-clear is reused (within reuse_for)');
      const permitId = await issuePermit(h.workerPool, freshCode());
      const code = (await su.query<{ c: string }>('SELECT entity_code AS c FROM birth_admission_permit WHERE permit_id = $1', [permitId])).rows[0]!.c;
      await rejectsWith(h.workerPool.query(admitSql, [permitId, '{}']), 'BG423', /refused: gate_drift=1 \(permit_log_mismatch=1/);
      assert.equal((await written(su, code)).rows, 0);
      await h.workerPool.query(`SELECT fn_permit_withdraw($1, 'CANCELLED', 'test', 'refused by the gate')`, [permitId]);
      // The tick always computes: the truth is back at once.
      assert.deepEqual((await tick(h.workerPool)).map((f) => f.dim), ['permit_log_mismatch']);
      await seesBlock('after the tick');

      // At the edge: older than a minute is stale even with reuse_for at its maximum.
      await forge(`dims = '[]', computed_at = clock_timestamp() - interval '61 seconds', reuse_for = '1 minute'`);
      await seesBlock('61 s old');
      // The DDL ledger's newest id ahead of the ledger: stale.
      await su.query(`UPDATE birth_admission_guard SET dims = '[]', computed_at = clock_timestamp(),
                        ddl_seen = (SELECT max(ddl_id) + 1000 FROM birth_ddl_ledger)`);
      await seesBlock('ddl_seen ahead');
      // Over a minute, or negative: the table refuses.
      await rejectsWith(su.query(`UPDATE birth_admission_guard SET reuse_for = '2 minutes'`), '23514', /birth_admission_guard_reuse_for_check/);
      await rejectsWith(su.query(`UPDATE birth_admission_guard SET reuse_for = '-1 second'`), '23514');

      // Dated ahead: stale, and the computation that meets it reports it.
      await forge(`dims = '[]', computed_at = clock_timestamp() + interval '1 hour', reuse_for = '1 minute'`);
      const ahead = await preflight();
      assert.match(blockerText(ahead), /permit_log_mismatch=1/);
      assert.match(blockerText(ahead), /gate_drift=1: FORGED control birth_admission_guard\.computed_at/);
      assert.ok((await guard(su)).computed_at <= new Date((await su.query<{ n: Date }>('SELECT clock_timestamp() AS n')).rows[0]!.n),
        'the guard is dated by its computation again');

      // The CHECK compares intervals with a month of 30 days and a day of 24 h: these pass it, yet
      // now() - it reaches 525 days (or a DST day) back. The reuse is clamped in seconds, and every
      // computation reports it until it is written back.
      for (const forged of ['100 years -36000 days', '1 day -86399 seconds']) {
        assert.equal((await su.query(`SELECT $1::interval BETWEEN '0 seconds' AND '1 minute' AS ok`, [forged])).rows[0].ok, true);
        await forge(`dims = '[]', computed_at = clock_timestamp() - interval '10 minutes', reuse_for = '${forged}'`);
        const blockers = await preflight();
        assert.match(blockerText(blockers), /permit_log_mismatch=1/, `reuse_for ${forged}: recomputed, the block is seen`);
        assert.match(blockerText(blockers), /gate_drift=1: FORGED control birth_admission_guard\.reuse_for/);
      }
      // The drift watch records it (birth_drift_finding), and resolves it once repaired.
      await h.workerPool.query(`SELECT fn_drift_watch_tick('test')`);
      const key = 'gate_drift:FORGED:control:birth_admission_guard.reuse_for';
      const finding = async () => (await su.query<{ open: boolean; actual: string }>(
        `SELECT resolved_at IS NULL AS open, actual FROM birth_drift_finding WHERE finding_key = $1 ORDER BY finding_id DESC LIMIT 1`, [key])).rows[0];
      assert.deepEqual(await finding(), { open: true, actual: '1 day -23:59:59' });
      // An owner's tune inside the bounds is no finding.
      await su.query(`UPDATE birth_admission_guard SET reuse_for = '10 seconds'`);
      assert.deepEqual((await tick(h.workerPool)).map((f) => f.dim), ['permit_log_mismatch']);
      await h.workerPool.query(`SELECT fn_drift_watch_tick('test')`);
      assert.equal((await finding())?.open, false, 'resolved once written back');
    } finally {
      await block.repair();
    }
  });

  test('a superuser\'s forged all-clear (dims only) moves the preflight, not the gate: the real worker\'s admission writes nothing', async () => {
    const block = await realBlock();
    const code = freshCode();
    try {
      await forge(`dims = '[]', computed_at = clock_timestamp(), reuse_for = '1 minute'`);
      const started = await admitByCode(h.client, { code, fields: { name: `tool ${code}` }, requestedBy: 'test' }, { taskQueue: h.taskQueue, wait: false });
      let ended: string | undefined;
      void h.client.workflow.getHandle(started.workflowId).result()
        .then(() => { ended = 'FINALIZED'; }, (e: Error) => { ended = `failed: ${(e.cause as Error | undefined)?.message ?? e.message}`; });
      const outcome = await eventually(async () =>
        ended ?? ((await status(h.client, { code }, { queryTimeoutMs: 2_000 })).state?.stage === 'BLOCKED' ? 'BLOCKED' : undefined),
      'the admission fails or parks', 60_000);
      // Within the minute the preflight reuses the forgery and the gate refuses the insert (BG423, the
      // admission fails compensated); had the preflight recomputed, it would have parked. Never born.
      assert.notEqual(outcome, 'FINALIZED');
      const w = await written(su, code);
      assert.equal(w.rows, 0, `no dot_tools row (${outcome})`);
      assert.deepEqual(w.births, []);
      assert.ok(w.permits.every((p) => p.row_id === null && p.birth_id === null && p.state !== 'FINALIZED'), JSON.stringify(w.permits));
      if (outcome !== 'BLOCKED') assert.match(outcome, /gate_drift=1 \(permit_log_mismatch=1/);
    } finally {
      await cancel(h.client, { code }, operator).catch(() => undefined);
      await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result().catch(() => undefined);
      await block.repair();
    }
  });
});
