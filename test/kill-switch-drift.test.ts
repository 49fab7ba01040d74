// The kill switch is an operator's act on the record: fn_admission_halt writes
// birth_admission_family.halted and its birth_admission_switch_log row in one transaction. A superuser
// who flips halted with a direct write leaves no log row, so fn_drift_check reports the family's halted
// against its newest logged switch (`FORGED control birth_admission_family.halted:<collection>`), which
// makes gate_drift fail closed until an operator re-states the switch through fn_admission_halt
// (SECURITY.md "What is only detected"). Here: the packet and fn_admission_halt alone never raise it
// (two operators racing included); a superuser's clear and a superuser's set each raise it, the gate
// refuses an insert under a valid permit, the real worker's admission parks and no break-glass or
// rebaseline passes it; the operator's re-statement clears it and the parked birth is then born; no role
// but a superuser writes the switch or its log. Every verdict is read back from the database.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { admitByCode, breakGlass, cancel, retry } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool } from '../db/pool.ts';
import { admissionHarness, type AdmissionHarness, freshCode, untilStage, written } from './support/admission-harness.ts';
import { asDirectus, demoteDirectus, inRolledBackTxn, preflightBlockers, tick, type Session } from './support/attacker.ts';
import { eventually } from './support/temporal.ts';
import { installOperatorLogin, issuePermit, operatorUrl, rebaseline, rejectsWith } from './support/packet-world.ts';

const admitSql = `SELECT row_id::text, entity_code FROM fn_admission_insert_dot_tools($1, $2::jsonb)`;
const operator = { actor: 'ops@birthgate.test', reason: 'kill-switch drill (test)' };
const halted = 'birth_admission_family.halted:dot_tools';
const findingKey = `gate_drift:FORGED:control:${halted}`;

type Q = Pick<pg.Pool | pg.Client, 'query'>;
type Drift = { kind: string; name: string; expected: string; actual: string | null; drift: string };
type Switch = { switch_id: string; halted: boolean; actor: string; session_role: string };

const drift = async (q: Q): Promise<Drift[]> =>
  (await q.query<Drift>('SELECT kind, name, expected, actual, drift FROM fn_drift_check() ORDER BY kind, name, drift')).rows;
const switchLog = async (q: Q): Promise<Switch[]> =>
  (await q.query<Switch>(`SELECT switch_id::text, halted, actor, session_role FROM birth_admission_switch_log
                           WHERE collection_name = 'dot_tools' ORDER BY switch_id`)).rows;
const family = async (q: Q): Promise<{ halted: boolean; xmin: string } | undefined> =>
  (await q.query<{ halted: boolean; xmin: string }>(`SELECT halted, xmin::text FROM birth_admission_family WHERE collection_name = 'dot_tools'`)).rows[0];
/** The one finding this file is about, as fn_drift_check words it. */
const forged = (expected: string, actual: string): Drift => ({ kind: 'control', name: halted, expected, actual, drift: 'FORGED' });
const blockerText = (bs: Array<{ detail: string }>): string => bs.map((b) => b.detail).join('; ');

describe('the kill switch flipped behind the record is loud', () => {
  let h: AdmissionHarness;
  let su: pg.Pool;
  let operatorPool: pg.Pool;
  let directus: Session;

  before(async () => {
    h = await admissionHarness('kill_switch');
    su = h.db.pool;
    await installOperatorLogin(su);
    operatorPool = createPool(operatorUrl(h.db.url), { max: 2, applicationName: 'test-kill-operator' });
    operatorPool.on('error', () => undefined);
    directus = await asDirectus(h.db.url);
  });
  after(async () => {
    await directus?.end();
    if (h) await demoteDirectus(su);
    await operatorPool?.end();
    await h?.stop();
  });

  /** The operator's act on the record; returns the switch-log row it wrote. */
  async function halt(on: boolean, reason: string, q: Q = operatorPool): Promise<Switch> {
    await q.query(`SELECT fn_admission_halt('dot_tools', $1, $2, $3)`, [on, operator.actor, reason]);
    return (await switchLog(su)).at(-1)!;
  }

  /** The drift watch's tick, as the Schedule's activity runs it (the worker): the guard refreshed and the finding recorded. */
  const watchTick = () => h.workerPool.query(`SELECT fn_drift_watch_tick('test-drift-watch')`);
  const recorded = async () => (await su.query<{ open: boolean; expected: string; actual: string }>(
    `SELECT resolved_at IS NULL AS open, expected, actual FROM birth_drift_finding WHERE finding_key = $1 ORDER BY finding_id DESC LIMIT 1`,
    [findingKey])).rows[0];

  test('the packet and fn_admission_halt alone never raise it: a halt, its lift and two operators racing leave the family and its newest switch-log row agreeing', async () => {
    // The packet applied on the fixture estate: the column's default, never logged, is no finding.
    assert.deepEqual(await switchLog(su), []);
    assert.equal((await family(su))?.halted, false);
    assert.deepEqual(await drift(su), [], 'a normal packet apply raises no finding');
    assert.deepEqual(await tick(h.workerPool), []);

    const on = await halt(true, 'incident drill');
    assert.deepEqual([on.halted, on.actor, on.session_role], [true, operator.actor, 'birthgate_test_operator'], 'on the record, with the login');
    assert.deepEqual(await drift(su), [], 'a halt on the record is no finding');
    assert.deepEqual(await tick(h.workerPool), [], 'the kill switch is a stop-condition, not a drift finding');
    assert.deepEqual((await preflightBlockers(h.workerPool, freshCode())).map((b) => [b.kind, b.hard]), [['kill_switch', true]]);

    // Two operators at once: the family row's lock orders them, and each log row is written after it,
    // so the newest log row is the value that stands.
    const racer = async (name: string) => {
      const c = new pg.Client({ connectionString: operatorUrl(h.db.url), application_name: name });
      c.on('error', () => undefined);
      await c.connect();
      return c;
    };
    const a = await racer('test-kill-racer-a');
    const b = await racer('test-kill-racer-b');
    try {
      await a.query('BEGIN');
      await halt(false, 'racer a lifts', a);
      const bDone = halt(true, 'racer b halts', b);
      await eventually(async () => (await su.query(
        `SELECT 1 FROM pg_stat_activity WHERE application_name = 'test-kill-racer-b' AND wait_event_type = 'Lock'`)).rowCount ? true : undefined,
      'racer b waits on racer a\'s row lock');
      await a.query('COMMIT');
      await bDone;
    } finally {
      await a.end();
      await b.end();
    }
    const log = await switchLog(su);
    assert.deepEqual(log.slice(-2).map((s) => [s.halted, s.actor]), [[false, operator.actor], [true, operator.actor]], 'a logged first, b last');
    assert.equal((await family(su))?.halted, true, 'the last writer stands');
    assert.deepEqual(await drift(su), []);

    await halt(false, 'drill over');
    assert.deepEqual(await drift(su), []);
    assert.deepEqual(await tick(h.workerPool), []);
    assert.deepEqual(await preflightBlockers(h.workerPool, freshCode()), []);
  });

  test('a superuser who lifts the kill switch behind the record: FORGED control finding, the gate refuses an insert under a valid permit, the real admission parks and no break-glass or rebaseline passes; the operator re-stating the switch clears it and the retry is born', async () => {
    const on = await halt(true, 'incident 42: stop admissions');
    const logged = (await switchLog(su)).length;
    await su.query(`UPDATE birth_admission_family SET halted = false WHERE collection_name = 'dot_tools'`);
    assert.equal((await switchLog(su)).length, logged, 'the superuser\'s write left no switch-log row');

    const finding = forged(`true (switch #${on.switch_id} by ${operator.actor})`, 'false');
    assert.deepEqual(await drift(su), [finding]);
    assert.deepEqual(await tick(h.workerPool),
      [{ dim: 'gate_drift', block_count: '1', detail: `FORGED control ${halted}`, hard: true }]);
    await watchTick();
    assert.deepEqual(await recorded(), { open: true, expected: finding.expected, actual: 'false' }, 'the drift watch records it');

    // The database gate: an insert under a valid RESERVED permit is refused, nothing written.
    const direct = freshCode();
    const permitId = await issuePermit(h.workerPool, direct);
    await rejectsWith(h.workerPool.query(admitSql, [permitId, '{}']), 'BG423',
      new RegExp(`insert of ${direct} refused: gate_drift=1 \\(gate_drift=1: FORGED control birth_admission_family\\.halted:dot_tools\\)`));
    const refused = await written(su, direct);
    assert.equal(refused.rows, 0);
    assert.deepEqual(refused.births, []);
    assert.deepEqual(refused.permits.map((p) => p.state), ['RESERVED'], 'the permit was not consumed');
    await h.workerPool.query(`SELECT fn_permit_withdraw($1, 'CANCELLED', 'test', 'refused by the gate')`, [permitId]);

    // The real admission through the real worker parks BLOCKED on the hard finding (the switch itself
    // reads "not halted"), and an operator's break-glass cannot pass it.
    const code = freshCode();
    try {
      await admitByCode(h.client, { code, fields: { name: `tool ${code}` }, requestedBy: 'test' }, { taskQueue: h.taskQueue, wait: false });
      const parked = await untilStage(h.client, code, 'BLOCKED');
      assert.match(blockerText(parked.blockers), /gate_drift=1: FORGED control birth_admission_family\.halted:dot_tools/);
      assert.ok(parked.blockers.every((b) => b.hard), JSON.stringify(parked.blockers));
      assert.ok(!parked.blockers.some((b) => b.kind === 'kill_switch'), 'the switch reads lifted; the finding is what parks it');
      await rejectsWith(breakGlass(h.client, operatorPool, { code }, { ...operator, approvalId: 'CHG-KILL-1' }), 'BG423', /break-glass refused/);
      // A rebaseline accepts catalog changes, never a switch flipped behind its record.
      assert.equal(await rebaseline(operatorPool, 'test: an operator tries to accept the forged switch'), 1);
      assert.deepEqual(await drift(su), [finding]);
      const w = await written(su, code);
      assert.equal(w.rows, 0, 'no dot_tools row');
      assert.deepEqual(w.births, [], 'no birth');
      assert.deepEqual(w.permits.map((p) => [p.state, p.row_id, p.birth_id, p.break_glass]), [['REQUESTED', null, null, false]]);
      assert.equal(w.breakGlass, 0);

      // The operator re-states the switch on the record (here: lifts it, as the incident is over).
      const off = await halt(false, 'incident 42 over: lifted on the record');
      assert.deepEqual([off.halted, off.session_role], [false, 'birthgate_test_operator']);
      assert.deepEqual(await drift(su), [], 'the record and the switch agree again');
      await watchTick();
      assert.equal((await recorded())?.open, false, 'the recorded finding is resolved');
      assert.deepEqual(await tick(h.workerPool), []);

      await retry(h.client, { code }, { actor: operator.actor, reason: 'switch re-stated' });
      const { result } = await admitByCode(h.client, { code, fields: { name: `tool ${code}` }, requestedBy: 'test' },
        { taskQueue: h.taskQueue, wait: true, timeoutMs: 60_000 });
      assert.equal(result?.stage, 'FINALIZED');
      const born = await written(su, code);
      assert.equal(born.rows, 1);
      assert.deepEqual(born.births.map((b) => b.status), ['born']);
      assert.deepEqual(born.permits.map((p) => p.state), ['FINALIZED']);
    } finally {
      await cancel(h.client, { code }, operator).catch(() => undefined);
      await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result().catch(() => undefined);
    }
  });

  test('a superuser who sets the kill switch by hand: the switch holds and the finding adds a reason; the operator\'s halt on the record clears the finding, its lift opens admissions', async () => {
    const last = (await switchLog(su)).at(-1)!;
    assert.equal(last.halted, false, 'precondition: lifted on the record');
    await su.query(`UPDATE birth_admission_family SET halted = true WHERE collection_name = 'dot_tools'`);
    assert.deepEqual(await drift(su), [forged(`false (switch #${last.switch_id} by ${operator.actor})`, 'true')]);
    assert.deepEqual((await tick(h.workerPool)).map((f) => [f.dim, f.detail]), [['gate_drift', `FORGED control ${halted}`]]);
    const blockers = await preflightBlockers(h.workerPool, freshCode());
    assert.deepEqual(blockers.map((b) => [b.kind, b.hard]), [['kill_switch', true], ['block_dim', true]]);
    assert.match(blockers[1]!.detail, /gate_drift=1: FORGED control birth_admission_family\.halted:dot_tools/);

    const code = freshCode();
    const permitId = await issuePermit(h.workerPool, code);
    await rejectsWith(h.workerPool.query(admitSql, [permitId, '{}']), 'BG423', /halted \(kill switch\)/);
    assert.equal((await written(su, code)).rows, 0);
    await h.workerPool.query(`SELECT fn_permit_withdraw($1, 'CANCELLED', 'test', 'refused by the gate')`, [permitId]);

    await halt(true, 'halt confirmed on the record');
    assert.deepEqual(await drift(su), []);
    assert.deepEqual(await tick(h.workerPool), []);
    assert.deepEqual((await preflightBlockers(h.workerPool, freshCode())).map((b) => b.kind), ['kill_switch'], 'only the switch is left');
    await halt(false, 'drill over');
    assert.deepEqual(await drift(su), []);
    assert.deepEqual(await preflightBlockers(h.workerPool, freshCode()), []);
  });

  test('a superuser who deletes a halted family\'s row (fn_family_flag then reads "not halted") is reported: the switch is absent', async () => {
    const on = await halt(true, 'halt before the row goes');
    const c = await su.connect();
    try {
      await inRolledBackTxn(c, async () => {
        await c.query(`DELETE FROM birth_admission_family WHERE collection_name = 'dot_tools'`);
        const rows = await drift(c);
        assert.deepEqual(rows.filter((d) => d.name === halted), [forged(`true (switch #${on.switch_id} by ${operator.actor})`, 'absent')]);
        // The catalog snapshot's switches changed too (the family list is fingerprinted).
        assert.deepEqual(rows.filter((d) => d.name !== halted).map((d) => [d.kind, d.name, d.drift]),
          [['control', 'admission switches and policy', 'CHANGED']]);
      });
    } finally {
      c.release();
    }
    assert.deepEqual(await drift(su), [], 'rolled back: nothing left');
    await halt(false, 'drill over');
    assert.deepEqual(await drift(su), []);
  });

  test('only a superuser writes the switch or its log: the worker, directus and an operator member are refused (42501), nothing changes', async () => {
    const before = { family: await family(su), log: await switchLog(su) };
    const attackers: Array<[string, Q]> = [['birthgate_worker', h.workerPool], ['directus', directus.c], ['birthgate_operator member', operatorPool]];
    for (const [who, q] of attackers) {
      const refused = (sql: string, re: RegExp) =>
        rejectsWith(q.query(sql), '42501', re).catch((e: Error) => { throw new Error(`${who}: ${sql}: ${e.message}`); });
      await refused(`UPDATE birth_admission_family SET halted = NOT halted WHERE collection_name = 'dot_tools'`, /permission denied for table birth_admission_family/);
      await refused(`INSERT INTO birth_admission_family (collection_name, halted) VALUES ('dot_tools', true)
                     ON CONFLICT (collection_name) DO UPDATE SET halted = EXCLUDED.halted`, /permission denied for table birth_admission_family/);
      await refused(`DELETE FROM birth_admission_family WHERE collection_name = 'dot_tools'`, /permission denied for table birth_admission_family/);
      await refused(`INSERT INTO birth_admission_switch_log (collection_name, halted, actor, reason) VALUES ('dot_tools', false, 'x', 'forged')`,
        /permission denied for table birth_admission_switch_log/);
      await refused(`UPDATE birth_admission_switch_log SET halted = NOT halted`, /permission denied for table birth_admission_switch_log/);
      await refused(`DELETE FROM birth_admission_switch_log`, /permission denied for table birth_admission_switch_log/);
      await refused(`TRUNCATE birth_admission_switch_log`, /permission denied for table birth_admission_switch_log/);
      await refused(`SET ROLE birthgate_owner`, /permission denied to set role/);
    }
    // The switch itself is the operators' alone.
    for (const [who, q] of attackers.filter(([w]) => w !== 'birthgate_operator member')) {
      await rejectsWith(q.query(`SELECT fn_admission_halt('dot_tools', true, 'x', 'y')`), '42501', /permission denied for function fn_admission_halt/)
        .catch((e: Error) => { throw new Error(`${who}: ${e.message}`); });
    }
    const may = async (role: string) => (await su.query<{ ok: boolean }>(
      `SELECT has_function_privilege($1, 'public.fn_admission_halt(text, boolean, text, text)', 'EXECUTE') AS ok`, [role])).rows[0]!.ok;
    assert.deepEqual(await Promise.all(['birthgate_operator', 'birthgate_test_operator', 'birthgate_worker', 'directus'].map(may)),
      [true, true, false, false]);
    assert.deepEqual({ family: await family(su), log: await switchLog(su) }, before, 'the family row (same xmin) and the log are untouched');
    assert.deepEqual(await drift(su), []);
  });

  test('the switch log is append-only, a superuser included: the halt\'s record cannot be rewritten or removed to agree with a hand-set switch; disabling its guard is DDL on the record', async () => {
    const on = await halt(true, 'halt a superuser will try to hide');
    const c = await su.connect();
    try {
      const before = await switchLog(su);
      await inRolledBackTxn(c, async () => {
        await c.query(`UPDATE birth_admission_family SET halted = false WHERE collection_name = 'dot_tools'`);
        await rejectsWith(c.query(`DELETE FROM birth_admission_switch_log WHERE switch_id = $1`, [on.switch_id]), 'BG403', /append-only: DELETE refused/);
      });
      await inRolledBackTxn(c, async () => {
        await rejectsWith(c.query(`UPDATE birth_admission_switch_log SET halted = false WHERE switch_id = $1`, [on.switch_id]), 'BG403', /append-only: UPDATE refused/);
      });
      await inRolledBackTxn(c, async () => {
        await rejectsWith(c.query(`TRUNCATE birth_admission_switch_log`), 'BG403', /append-only: TRUNCATE refused/);
      });
      // Replica mode does not skip it (ENABLE ALWAYS).
      await inRolledBackTxn(c, async () => {
        await c.query(`SET LOCAL session_replication_role = replica`);
        await rejectsWith(c.query(`DELETE FROM birth_admission_switch_log WHERE switch_id = $1`, [on.switch_id]), 'BG403');
      });
      assert.deepEqual(await switchLog(su), before, 'the record is whole');
      // The only way past it is to disable the trigger: DDL, which the ledger's event trigger records.
      await inRolledBackTxn(c, async () => {
        const ddlBefore = (await c.query<{ n: string }>(`SELECT count(*)::text AS n FROM birth_ddl_ledger`)).rows[0]!.n;
        await c.query(`ALTER TABLE birth_admission_switch_log DISABLE TRIGGER trg_switch_log_append_only`);
        const ddl = (await c.query<{ n: string; tag: string; object: string | null }>(
          `SELECT (SELECT count(*) FROM birth_ddl_ledger)::text AS n, command_tag AS tag, object_identity AS object
             FROM birth_ddl_ledger ORDER BY ddl_id DESC LIMIT 1`)).rows[0]!;
        assert.equal(Number(ddl.n), Number(ddlBefore) + 1, 'the DISABLE TRIGGER is on the DDL record');
        assert.equal(ddl.tag, 'ALTER TABLE');
        assert.match(ddl.object ?? '', /birth_admission_switch_log/);
      });
    } finally {
      c.release();
      await halt(false, 'drill over');
    }
    assert.deepEqual(await drift(su), []);
  });
});
