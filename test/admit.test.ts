// dotBirthAdmit end to end on a real Temporal dev server and a real PostgreSQL 16 with the apply
// packet (DESIGN §4, issue 4 "Tests"). Assertions are on the database and on the workflow.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomInt } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { admitByCode, breakGlass, cancel, listStuck, retry, rollback, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { BirthStage, BreakGlass, EntityCode, PermitId } from '../contracts/search-attributes.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { rebaseline } from './support/packet-world.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { eventually } from './support/temporal.ts';

/** Fails the dot_tools family rule (registry pattern of step 13): a stop-condition. */
const ruleBreakingCode = () => `Tool_${randomInt(1e8, 1e9)}`;
const fields = (code: string) => ({ name: `tool ${code}` });
const operator = { actor: 'ops@birthgate.test', reason: 'OPS-42 owner approved the exception' };

/** The whole of dot_tools' births in birth_registry, so "nothing written" also covers an UPDATE. */
async function registryDigest(pool: AdmissionHarness['db']['pool']): Promise<unknown> {
  const { rows } = await pool.query(
    `SELECT count(*)::int AS n, md5(coalesce(string_agg(b::text, '|' ORDER BY b.id), '')) AS digest FROM birth_registry b WHERE b.collection_name = 'dot_tools'`);
  return rows[0];
}

/** The permit's logged transitions, oldest first, as [from, to]. */
async function permitTransitions(pool: AdmissionHarness['db']['pool'], permitId: string): Promise<[string | null, string][]> {
  const { rows } = await pool.query<{ from_state: string | null; to_state: string }>(
    'SELECT from_state, to_state FROM birth_admission_permit_transition WHERE permit_id = $1 ORDER BY transition_id', [permitId]);
  return rows.map((r) => [r.from_state, r.to_state]);
}

describe('dotBirthAdmit on the real stack', () => {
  let h: AdmissionHarness;
  before(async () => (h = await admissionHarness('admit')));
  after(async () => h?.stop());

  const admit = (code: string, wait = true) =>
    admitByCode(h.client, { code, fields: fields(code), requestedBy: 'test' }, { taskQueue: h.taskQueue, wait });

  test('the worker connects as birthgate_worker, not a superuser', async () => {
    const { rows } = await h.workerPool.query<{ current_user: string; rolsuper: boolean }>(
      'SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user',
    );
    assert.deepEqual(rows[0], { current_user: 'birthgate_worker', rolsuper: false });
  });

  test('a clean admission is born once: one row, one birth, the permit FINALIZED and linked', async () => {
    const code = freshCode();
    const { result } = await admit(code);
    assert.ok(result);
    assert.equal(result.stage, 'FINALIZED');
    assert.equal(result.breakGlass, false);
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.equal(w.births.length, 1);
    assert.deepEqual(w.permits, [{ permit_id: result.permitId, state: 'FINALIZED', break_glass: false, row_id: result.rowId, birth_id: result.birthId }]);
    assert.equal(w.births[0]!.id, result.birthId);
    // A clean admission never parks: one fn_permit_issue, REQUESTED → RESERVED in one transaction.
    const t = await h.db.pool.query<{ n: number }>(
      'SELECT count(DISTINCT txid)::int AS n FROM birth_admission_permit_transition WHERE permit_id = $1 AND to_state IN ($2, $3)',
      [result.permitId, 'REQUESTED', 'RESERVED']);
    assert.equal(t.rows[0]!.n, 1);
    assert.deepEqual(await permitTransitions(h.db.pool, result.permitId),
      [[null, 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'CONSUMED'], ['CONSUMED', 'FINALIZED']]);

    // Lean (issue 8 §6): a clean admission upserts no stage — Completed is its FINALIZED, found by code.
    const d = await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).describe();
    assert.equal(d.status.name, 'COMPLETED');
    assert.equal(d.typedSearchAttributes.get(BirthStage), undefined);
    assert.equal(d.typedSearchAttributes.get(EntityCode), code);
    assert.equal(await d.staticSummary(), `Birth admission of dot_tools \`${code}\``);
  });

  test('the CLI admits and reports: admit --wait --json, then status', async () => {
    const code = freshCode();
    const env = { ...process.env, TEMPORAL_ADDRESS: testEnv().temporalAddress, DATABASE_URL: h.db.url, BIRTHGATE_TASK_QUEUE: h.taskQueue };
    const admitted = await runCli(['admit', code, '--field', 'category=cli', '--wait', '--json'], env);
    assert.equal(admitted.code, 0, admitted.stderr);
    const { result } = JSON.parse(admitted.stdout) as { result: { stage: string; birthId: string } };
    assert.equal(result.stage, 'FINALIZED');
    const shown = await runCli(['status', code], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`FINALIZED \\(COMPLETED\\)[\\s\\S]*birth ${result.birthId} born`));
    assert.deepEqual((await h.db.pool.query('SELECT name, category FROM dot_tools WHERE code = $1', [code])).rows, [{ name: code, category: 'cli' }]);
  });

  test('the same code admitted twice in a row attaches to the first admission: one birth, the same result', async () => {
    const code = freshCode();
    const first = await admit(code);
    const second = await admit(code);
    assert.deepEqual(second.result, first.result);
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.equal(w.births.length, 1);
    assert.equal(w.permits.length, 1);
  });

  test('20 concurrent admits of one code make one birth, and every caller gets the same result', async () => {
    const code = freshCode();
    const all = await Promise.all(Array.from({ length: 20 }, () => admit(code)));
    for (const a of all) assert.deepEqual(a.result, all[0]!.result);
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.equal(w.births.length, 1);
    assert.deepEqual(w.permits.map((p) => p.state), ['FINALIZED']);
  });

  test('the first admit starts without an attach signal; a later one attaches with one, and both requesters are recorded', async () => {
    // admitByCode starts first (conflict policy FAIL) and signals-with-start only when the id is taken:
    // the history shows which path each caller took.
    const signals = async (workflowId: string) =>
      ((await h.client.workflow.getHandle(workflowId).fetchHistory()).events ?? []).filter((e) => e.workflowExecutionSignaledEventAttributes).length;
    const clean = freshCode();
    const { result, workflowId: cleanId } = await admit(clean);
    assert.equal(result?.stage, 'FINALIZED');
    assert.equal(await signals(cleanId), 0, 'the starting caller sent no attach signal');

    const code = ruleBreakingCode(); // parks, so a second admit finds it running
    const first = await admitByCode(h.client, { code, fields: fields(code), requestedBy: 'dot-a' }, { taskQueue: h.taskQueue, wait: false });
    await eventually(async () => ((await status(h.client, { code })).state?.stage === 'BLOCKED' ? true : undefined), 'BLOCKED');
    const second = await admitByCode(h.client, { code, fields: fields(code), requestedBy: 'dot-b' }, { taskQueue: h.taskQueue, wait: false });
    assert.equal(second.workflowId, first.workflowId);
    assert.equal(second.running, true);
    assert.equal(await signals(first.workflowId), 1, 'the attaching caller sent one attach signal');
    assert.deepEqual((await status(h.client, { code })).state?.requestedBy, ['dot-a', 'dot-b']);
    await cancel(h.client, { code }, operator);
    const err = await h.client.workflow.getHandle(first.workflowId).result().catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.deepEqual((await written(h.db.pool, code)).permits.map((p) => p.state), ['CANCELLED']);
  });

  test('a stop-condition parks a stuck birth (stuck, visibility); break-glass admits it under a ledger entry', async () => {
    const code = ruleBreakingCode();
    await admit(code, false);
    const stuck = await eventually(async () => (await listStuck(h.client)).find((s) => s.code === code), 'the stuck birth in listStuck');
    assert.equal(stuck.stage, 'BLOCKED');
    assert.match(stuck.blockers.join(' '), /code_rule/);

    // The CLI verb, and the raw visibility query an operator would type in the UI.
    const env = { ...process.env, TEMPORAL_ADDRESS: testEnv().temporalAddress, DATABASE_URL: h.db.url };
    const cli = await runCli(['stuck', '--json'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok((JSON.parse(cli.stdout) as { code: string }[]).some((s) => s.code === code));
    const visible = [];
    for await (const w of h.client.workflow.list({ query: `BirthStage = 'BLOCKED' AND EntityCode = '${code}'` })) visible.push(w.workflowId);
    assert.deepEqual(visible, [admissionWorkflowId('dot_tools', code)]);

    // The stuck birth holds its place in the ledger: one REQUESTED permit, shown by the workflow
    // (state, PermitId search attribute) and by v_permit_stuck; nothing else written.
    const parked = await written(h.db.pool, code);
    assert.deepEqual({ ...parked, permits: parked.permits.map((p) => [p.state, p.break_glass, p.row_id]) },
      { rows: 0, births: [], permits: [['REQUESTED', false, null]], breakGlass: 0 });
    const permitId = parked.permits[0]!.permit_id;
    assert.equal((await status(h.client, { code })).state?.permit?.permitId, permitId);
    const listed = await eventually(async () => (await listStuck(h.client)).find((s) => s.code === code && s.permitId !== null), 'listStuck with the permit');
    assert.equal(listed.permitId, permitId);
    const d = await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).describe();
    assert.equal(d.typedSearchAttributes.get(PermitId), permitId);
    const inView = await h.db.pool.query('SELECT state FROM v_permit_stuck WHERE permit_id = $1', [permitId]);
    assert.deepEqual(inView.rows, [{ state: 'REQUESTED' }]);

    await breakGlass(h.client, h.db.pool, { code }, { ...operator, approvalId: 'APPROVAL-7' });
    const { result } = await admit(code);
    assert.equal(result?.breakGlass, true);
    assert.equal(result?.permitId, permitId, 'the requested permit is the one reserved and used');
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.equal(w.births.length, 1);
    assert.equal(w.breakGlass, 1);
    assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state, p.break_glass]), [[permitId, 'FINALIZED', true]]);
    assert.deepEqual(await permitTransitions(h.db.pool, permitId),
      [[null, 'REQUESTED'], ['REQUESTED', 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'CONSUMED'], ['CONSUMED', 'FINALIZED']],
      'the break-glass is on the permit\'s record (REQUESTED → REQUESTED, opened while parked)');
    const ledger = await h.db.pool.query('SELECT actor, reason, approval_id, opened_by, permit_id FROM birth_break_glass WHERE entity_code = $1', [code]);
    const { rows: [me] } = await h.db.pool.query<{ u: string }>('SELECT session_user AS u');
    assert.deepEqual(ledger.rows[0], { actor: operator.actor, reason: operator.reason, approval_id: 'APPROVAL-7', opened_by: me!.u, permit_id: permitId });
    // A birth that showed a stage to a human ends showing FINALIZED, under the glass.
    const ended = await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).describe();
    assert.equal(ended.typedSearchAttributes.get(BirthStage), 'FINALIZED');
    assert.equal(ended.typedSearchAttributes.get(BreakGlass), true);
  });

  test('cancel of another stuck birth: its permit ends CANCELLED, nothing written, the admission ends CANCELLED', async () => {
    const code = ruleBreakingCode();
    const { workflowId } = await admit(code, false);
    await eventually(async () => ((await status(h.client, { code })).state?.stage === 'BLOCKED' ? true : undefined), 'BLOCKED');
    const requested = await written(h.db.pool, code);
    assert.deepEqual(requested.permits.map((p) => p.state), ['REQUESTED']);
    const registryBefore = await registryDigest(h.db.pool);
    await cancel(h.client, { code }, operator);
    const err = await h.client.workflow.getHandle(workflowId).result().catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.equal((err.cause as ApplicationFailure).type, 'ADMISSION_CANCELLED');
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 0, 'nothing written to dot_tools');
    assert.equal(w.births.length, 0, 'no birth');
    assert.equal(w.breakGlass, 0);
    assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state, p.row_id, p.birth_id]), [[requested.permits[0]!.permit_id, 'CANCELLED', null, null]]);
    assert.deepEqual(await permitTransitions(h.db.pool, requested.permits[0]!.permit_id), [[null, 'REQUESTED'], ['REQUESTED', 'CANCELLED']]);
    const reason = await h.db.pool.query('SELECT actor, reason FROM birth_admission_permit_transition WHERE permit_id = $1 AND to_state = $2',
      [requested.permits[0]!.permit_id, 'CANCELLED']);
    assert.deepEqual(reason.rows, [{ actor: operator.actor, reason: operator.reason }]);
    assert.deepEqual(await registryDigest(h.db.pool), registryBefore, 'birth_registry untouched');
    const s = (await status(h.client, { code })).state;
    assert.equal(s?.stage, 'CANCELLED');
    assert.equal(s?.permit?.permitId, requested.permits[0]!.permit_id);
  });

  test('a gate drift (BLOCK dim) parks the admission; once the drift is cleared, retry admits it', async () => {
    const code = freshCode();
    await h.db.pool.query('ALTER TABLE dot_tools DISABLE TRIGGER trg_audit_dot_tools'); // a superuser bypass
    try {
      await admit(code, false);
      const st = await eventually(async () => {
        const s = (await status(h.client, { code })).state;
        return s?.stage === 'BLOCKED' ? s : undefined;
      }, 'BLOCKED on gate_drift');
      assert.deepEqual(st.blockers.map((b) => b.kind), ['block_dim']);
      assert.match(st.blockers[0]!.detail, /gate_drift/);
    } finally {
      await h.db.pool.query('ALTER TABLE dot_tools ENABLE TRIGGER trg_audit_dot_tools');
    }
    // Repaired, the DDL stays on the record: the admission stays parked until an owner accepts it.
    await retry(h.client, { code }, { actor: operator.actor, reason: 'drift repaired' });
    const still = await eventually(async () => {
      const s = (await status(h.client, { code })).state;
      return s?.decisions.length === 1 && s.stage === 'BLOCKED' ? s : undefined;
    }, 'retry settled, still BLOCKED');
    assert.match(still.blockers[0]!.detail, /gate_drift=\d+: DDL ddl ALTER TABLE public\.dot_tools/);
    assert.equal(await rebaseline(h.db.pool, 'trg_audit_dot_tools disabled and restored (test)'), 0);
    await retry(h.client, { code }, { actor: operator.actor, reason: 'drift accepted by the owner' });
    const { result } = await admit(code);
    assert.equal(result?.breakGlass, false);
    assert.equal((await written(h.db.pool, code)).births.length, 1);
  });

  test('rollback after FINALIZED removes the row and retires the birth, keeping the history', async () => {
    const code = freshCode();
    const { result } = await admit(code);
    const r = await rollback(h.client, { code }, operator, { taskQueue: h.taskQueue });
    assert.equal(r.via, 'dotBirthRollback');
    assert.equal(r.stage, 'ROLLED_BACK');
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 0, 'the governed row is removed');
    assert.deepEqual(w.births, [{ id: result!.birthId, status: 'retired' }], 'the birth is retired, not deleted');
    assert.deepEqual(w.permits.map((p) => p.state), ['FINALIZED']);
    // Idempotent: a second rollback retires nothing new.
    const stateBefore = await written(h.db.pool, code);
    const transitions = await h.db.pool.query('SELECT count(*)::int AS n FROM birth_status_transition WHERE entity_code = $1', [code]);
    const again = await rollback(h.client, { code }, operator, { taskQueue: h.taskQueue });
    assert.equal(again.stage, 'ROLLED_BACK');
    assert.deepEqual(await written(h.db.pool, code), stateBefore, 'nothing moved: row gone, birth retired, permit FINALIZED');
    assert.deepEqual((await h.db.pool.query('SELECT count(*)::int AS n FROM birth_status_transition WHERE entity_code = $1', [code])).rows, transitions.rows,
      'no second retire on the record');
  });
});
