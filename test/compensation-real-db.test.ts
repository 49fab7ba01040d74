// The compensations on the real database (DESIGN §4, issue 8 item 7): a rollback or a Temporal cancel
// of a running admission undoes exactly what committed — the row removed, the birth retired, a permit
// not yet used withdrawn — and a compensation the database refuses parks the admission as
// COMPENSATION_FAILED with nothing moved, until an operator repairs the cause and retries it. A
// break-glass under the kill switch is refused by the database and writes nothing. Real PostgreSQL 16,
// the real dev server and admission worker; every outcome is read from the database.
// Covered elsewhere, not repeated: rollback after FINALIZED and the operator's cancel of a stuck birth
// (admit.test.ts); fn_break_glass_open's BG423 at the SQL level (security-attacks.test.ts 9b).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type pg from 'pg';
import { admitByCode, breakGlass, DecisionRefusedError, retry, rollback, status } from '../client/admissions.ts';
import { createPool } from '../db/pool.ts';
import {
  admissionHarness, type AdmissionHarness, birthTransitions, freshCode, holdInserts, permitTransitions, untilStage, written,
} from './support/admission-harness.ts';
import { installOperatorLogin, operatorUrl } from './support/packet-world.ts';
import { eventually } from './support/temporal.ts';

/** Fails the dot_tools family rule (step 13): the admission parks as a stuck birth. */
const ruleBreakingCode = () => `Tool_${randomInt(1e8, 1e9)}`;
const operator = { actor: 'ops@compensation.test', reason: 'OPS-77 undo this admission' };
const CLEAN: [string | null, string][] = [[null, 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'CONSUMED'], ['CONSUMED', 'FINALIZED']];

/** What the admission ended with: the failure type, or 'cancelled' for a Temporal cancellation. */
async function endOf(h: AdmissionHarness, workflowId: string): Promise<string> {
  const err = await h.client.workflow.getHandle(workflowId).result().then(() => assert.fail('the admission should not finalize'), (e: unknown) => e);
  assert.ok(err instanceof WorkflowFailedError, String(err));
  if (err.cause instanceof CancelledFailure) return 'cancelled';
  return (err.cause as ApplicationFailure).type ?? String(err.cause);
}

describe('compensations on the real database', () => {
  let h: AdmissionHarness;
  let operatorDb: pg.Pool;
  before(async () => {
    h = await admissionHarness('compensation');
    await installOperatorLogin(h.db.pool);
    operatorDb = createPool(operatorUrl(h.db.url), { max: 2, applicationName: 'test-operator' });
    operatorDb.on('error', () => undefined); // DROP DATABASE … WITH (FORCE) at teardown
  });
  after(async () => {
    await operatorDb?.end();
    await h?.stop();
  });

  const admit = (code: string) => admitByCode(h.client, { code, fields: { name: code }, requestedBy: 'test' }, { taskQueue: h.taskQueue });

  /** Admit `code` with its insert held; returns once the admission waits in INSERTING under its RESERVED permit. */
  async function admitHeld(code: string) {
    const held = await holdInserts(h.db.url);
    try {
      const { workflowId } = await admit(code);
      await untilStage(h.client, code, 'INSERTING');
      const w = await written(h.db.pool, code);
      assert.deepEqual({ rows: w.rows, permits: w.permits.map((p) => p.state) }, { rows: 0, permits: ['RESERVED'] }, 'held before its insert');
      return { held, workflowId, permitId: w.permits[0]!.permit_id };
    } catch (err) {
      await held.release();
      throw err;
    }
  }

  /** Send a rollback to the running admission and wait until the workflow has accepted it; `rolled` settles when it ends. */
  async function rollbackAccepted(code: string) {
    const rolled = rollback(h.client, { code }, operator, { taskQueue: h.taskQueue }).then((r) => ({ r }), (err: unknown) => ({ err }));
    await eventually(async () => {
      const s = (await status(h.client, { code }, { queryTimeoutMs: 2_000 })).state;
      return s?.decisions.some((d) => d.kind === 'rollback' && d.accepted) ? true : undefined;
    }, 'the rollback accepted');
    return { rolled };
  }

  test('rollback while the insert runs: the row that committed is removed, its birth retired, the permit stays FINALIZED', async () => {
    const code = freshCode();
    const { held, workflowId, permitId } = await admitHeld(code);
    let rolled;
    try {
      ({ rolled } = await rollbackAccepted(code));
    } finally {
      await held.release(); // the insert commits now; the rollback is acted on right after it
    }
    const outcome = await rolled;
    assert.ok('r' in outcome, String((outcome as { err?: unknown }).err));
    assert.deepEqual([outcome.r.via, outcome.r.stage], ['signal', 'ROLLED_BACK']);
    assert.equal(await endOf(h, workflowId), 'ADMISSION_ROLLED_BACK');

    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 0, 'the governed row is removed');
    assert.equal(w.births.length, 1);
    assert.deepEqual(w.births.map((b) => b.status), ['retired'], 'the birth is retired, not deleted');
    assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state, p.birth_id]), [[permitId, 'FINALIZED', w.births[0]!.id]]);
    assert.deepEqual(await permitTransitions(h.db.pool, permitId), [...CLEAN, ['FINALIZED', 'FINALIZED']], 'one rollback on the permit\'s record');
    assert.deepEqual(await birthTransitions(h.db.pool, code), [{ from: 'born', to: 'retired', actor: operator.actor }]);
    const s = (await status(h.client, { code })).state;
    assert.deepEqual(s?.compensations, { done: ['remove row and retire birth', 'withdraw permit'], pending: [] });
  });

  test('a retire the database refuses parks the admission as COMPENSATION_FAILED with nothing moved; repaired, retry finishes it', async () => {
    const code = freshCode();
    // A birth elsewhere names the code as its parent: the retire gate refuses (BG428 no_children) —
    // a refusal, so the compensation fails at once instead of retrying for its 2 minutes.
    const child = `KBA-CHILD-${randomInt(1e8, 1e9)}`;
    await h.db.pool.query(`INSERT INTO birth_registry (entity_code, collection_name, parent_code) VALUES ($1, 'kb_articles', $2)`, [child, code]);
    const { held, workflowId, permitId } = await admitHeld(code);
    let rolled;
    try {
      ({ rolled } = await rollbackAccepted(code));
    } finally {
      await held.release();
    }

    const parked = await untilStage(h.client, code, 'COMPENSATION_FAILED');
    assert.match(parked.error?.message ?? '', /compensation "remove row and retire birth" failed: .*no_children/);
    assert.deepEqual(parked.compensations.pending, ['remove row and retire birth', 'withdraw permit']);
    // Nothing moved: the row, the born birth, the FINALIZED permit, and no rollback on either record.
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 1);
    assert.deepEqual(w.births.map((b) => b.status), ['born']);
    assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state, p.birth_id]), [[permitId, 'FINALIZED', w.births[0]!.id]]);
    assert.deepEqual(await permitTransitions(h.db.pool, permitId), CLEAN);
    assert.deepEqual(await birthTransitions(h.db.pool, code), []);
    // A stuck birth for the operator; another rollback is refused: retry (or cancel) is what applies.
    await eventually(async () => {
      const all = [];
      for await (const x of h.client.workflow.list({ query: `BirthStage = 'COMPENSATION_FAILED' AND EntityCode = '${code}'` })) all.push(x);
      return all.length === 1 ? true : undefined;
    }, 'COMPENSATION_FAILED in visibility');
    await assert.rejects(rollback(h.client, { code }, operator, { taskQueue: h.taskQueue }),
      (err: Error) => err instanceof DecisionRefusedError && /a compensation failed — retry it/.test(err.message));

    // Repaired by hand (the child detached), the operator's retry runs the retire again, then the rest.
    await h.db.pool.query('UPDATE birth_registry SET parent_code = NULL WHERE entity_code = $1', [child]);
    const ack = await retry(h.client, { code }, { actor: operator.actor, reason: 'child detached' });
    assert.deepEqual([ack.accepted, ack.note], [true, 'retry compensation "remove row and retire birth"']);
    assert.equal(await endOf(h, workflowId), 'ADMISSION_ROLLED_BACK');
    assert.deepEqual(await rolled, { r: { via: 'signal', stage: 'ROLLED_BACK', workflowId } }, 'the first rollback answers once it is done');
    const done = await written(h.db.pool, code);
    assert.equal(done.rows, 0, 'the row is gone');
    assert.deepEqual(done.births, [{ id: w.births[0]!.id, status: 'retired' }]);
    assert.deepEqual(done.permits.map((p) => p.state), ['FINALIZED']);
    assert.deepEqual(await permitTransitions(h.db.pool, permitId), [...CLEAN, ['FINALIZED', 'FINALIZED']]);
    assert.deepEqual(await birthTransitions(h.db.pool, code), [{ from: 'born', to: 'retired', actor: operator.actor }]);
  });

  test('a Temporal cancel of a stuck birth withdraws its permit: CANCELLED on the record, nothing written', async () => {
    const code = ruleBreakingCode();
    const { workflowId } = await admit(code);
    await untilStage(h.client, code, 'BLOCKED');
    const parked = await written(h.db.pool, code);
    assert.deepEqual(parked.permits.map((p) => p.state), ['REQUESTED']);
    const permitId = parked.permits[0]!.permit_id;

    await h.client.workflow.getHandle(workflowId).cancel();
    assert.equal(await endOf(h, workflowId), 'cancelled');
    assert.equal((await h.client.workflow.getHandle(workflowId).describe()).status.name, 'CANCELLED');
    assert.deepEqual(await written(h.db.pool, code), {
      rows: 0, births: [], breakGlass: 0,
      permits: [{ permit_id: permitId, state: 'CANCELLED', break_glass: false, row_id: null, birth_id: null }],
    });
    const log = await h.db.pool.query('SELECT from_state, to_state, actor, reason FROM birth_admission_permit_transition WHERE permit_id = $1 ORDER BY transition_id', [permitId]);
    assert.deepEqual(log.rows.slice(1), [{ from_state: 'REQUESTED', to_state: 'CANCELLED', actor: 'test', reason: 'workflow cancelled' }]);
  });

  test('a Temporal cancel while the insert runs: the insert that committed is undone (row removed, birth retired)', async () => {
    const code = freshCode();
    const { held, workflowId, permitId } = await admitHeld(code);
    try {
      await h.client.workflow.getHandle(workflowId).cancel(); // in history before the insert can commit
    } finally {
      await held.release();
    }
    assert.equal(await endOf(h, workflowId), 'cancelled');
    const w = await written(h.db.pool, code);
    assert.equal(w.rows, 0);
    assert.deepEqual(w.births.map((b) => b.status), ['retired']);
    assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state]), [[permitId, 'FINALIZED']]);
    assert.deepEqual(await permitTransitions(h.db.pool, permitId), [...CLEAN, ['FINALIZED', 'FINALIZED']]);
    assert.deepEqual(await birthTransitions(h.db.pool, code), [{ from: 'born', to: 'retired', actor: 'test' }]);
  });

  test('break-glass under the kill switch: the database refuses the entry (BG423), nothing is written, the birth stays parked', async () => {
    const code = ruleBreakingCode();
    await admit(code);
    await untilStage(h.client, code, 'BLOCKED');
    const parked = await written(h.db.pool, code);
    const permitId = parked.permits[0]!.permit_id;
    const glass = { actor: operator.actor, reason: 'OPS-78 legacy code', approvalId: 'APR-KILL-1' };

    await operatorDb.query(`SELECT fn_admission_halt('dot_tools', true, $1, 'kill switch drill')`, [operator.actor]);
    try {
      await assert.rejects(breakGlass(h.client, operatorDb, { code }, glass), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'BG423', err.message);
        assert.match(err.message, /break-glass refused: admissions of dot_tools are halted \(kill switch\)/);
        return true;
      });
    } finally {
      await operatorDb.query(`SELECT fn_admission_halt('dot_tools', false, $1, 'drill over')`, [operator.actor]);
    }
    assert.deepEqual(await written(h.db.pool, code), parked, 'nothing written: no entry, the permit still REQUESTED');
    const p = await h.db.pool.query('SELECT state, break_glass, break_glass_id FROM birth_admission_permit WHERE permit_id = $1', [permitId]);
    assert.deepEqual(p.rows, [{ state: 'REQUESTED', break_glass: false, break_glass_id: null }]);
    const s = (await status(h.client, { code })).state;
    assert.equal(s?.stage, 'BLOCKED');
    assert.deepEqual(s?.decisions, [], 'the refused break-glass never reached the admission');

    // The switch off, the same break-glass opens its entry and the stuck birth is admitted under it.
    const ack = await breakGlass(h.client, operatorDb, { code }, glass);
    const { result } = await admitByCode(h.client, { code, fields: { name: code }, requestedBy: 'test' }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(result?.permitId, permitId);
    assert.equal(result?.breakGlass, true);
    const bg = await h.db.pool.query('SELECT break_glass_id::text AS id FROM birth_break_glass WHERE permit_id = $1', [permitId]);
    assert.deepEqual(bg.rows, [{ id: ack.breakGlassId }]);
  });
});
