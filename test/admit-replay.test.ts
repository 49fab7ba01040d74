// Determinism (issue 4 "Replay"): the histories of the admission scenarios — clean birth, attach,
// stuck → break-glass, stuck → retry → cancel, rollback while stuck, Temporal cancellation, invalid
// input, rollback after FINALIZED — replay against the current workflow bundle without a
// nondeterminism error. Each scenario is first checked to have ended the way it claims (every
// decision awaited, every error fails the test), so a broken scenario cannot pass as a replayed one.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomInt } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { type ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { admitByCode, breakGlass, cancel, retry, rollback, status } from '../client/admissions.ts';
import { admissionWorkflowId, rollbackWorkflowId } from '../contracts/admission.ts';
import { admissionHarness, type AdmissionHarness, freshCode } from './support/admission-harness.ts';
import { eventually, workflowBundle } from './support/temporal.ts';

const stuckCode = () => `Tool_${randomInt(1e8, 1e9)}`;
const op = { actor: 'replay@test', reason: 'replay scenario' };

describe('admission histories replay deterministically', () => {
  let h: AdmissionHarness;
  before(async () => (h = await admissionHarness('replay')));
  after(async () => h?.stop());

  const admit = (code: string, wait = false) => admitByCode(h.client, { code, fields: { name: code } }, { taskQueue: h.taskQueue, wait });
  const blocked = (code: string) =>
    eventually(async () => ((await status(h.client, { code })).state?.stage === 'BLOCKED' ? true : undefined), `${code} BLOCKED`);
  /** How a closed admission ended: its failure type, or 'cancelled' for a Temporal cancellation. */
  const ended = async (workflowId: string): Promise<string | null | undefined> => {
    const err = await h.client.workflow.getHandle(workflowId).result().then(() => assert.fail(`${workflowId} should not complete`), (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError, String(err));
    return err.cause instanceof CancelledFailure ? 'cancelled' : (err.cause as ApplicationFailure).type;
  };

  test('every scenario replays', async () => {
    const ids: string[] = [];

    const clean = freshCode(); // clean birth, then a second admit attaching, then rollback after FINALIZED
    assert.equal((await admit(clean, true)).result?.stage, 'FINALIZED');
    assert.equal((await admit(clean, true)).result?.stage, 'FINALIZED');
    const undone = await rollback(h.client, { code: clean }, op, { taskQueue: h.taskQueue });
    assert.deepEqual([undone.via, undone.stage], ['dotBirthRollback', 'ROLLED_BACK']);
    ids.push(admissionWorkflowId('dot_tools', clean), rollbackWorkflowId('dot_tools', clean));

    const glass = stuckCode(); // stuck → break-glass → born
    await admit(glass);
    await blocked(glass);
    await breakGlass(h.client, h.db.pool, { code: glass }, { ...op, approvalId: 'REPLAY-1' });
    const born = await admit(glass, true);
    assert.deepEqual([born.result?.stage, born.result?.breakGlass], ['FINALIZED', true]);
    ids.push(born.workflowId);

    const retried = stuckCode(); // stuck → retry (still stuck) → cancel
    const r = await admit(retried);
    await blocked(retried);
    await retry(h.client, { code: retried }, { actor: op.actor });
    await eventually(async () => ((await status(h.client, { code: retried })).state?.decisions.length ? true : undefined), 'retry settled');
    await blocked(retried);
    await cancel(h.client, { code: retried }, op);
    assert.equal(await ended(r.workflowId), 'ADMISSION_CANCELLED');
    ids.push(r.workflowId);

    const rolled = stuckCode(); // rollback while stuck
    const rb = await admit(rolled);
    await blocked(rolled);
    const rolledBack = await rollback(h.client, { code: rolled }, op, { taskQueue: h.taskQueue });
    assert.deepEqual([rolledBack.via, rolledBack.stage], ['signal', 'ROLLED_BACK']);
    assert.equal(await ended(rb.workflowId), 'ADMISSION_ROLLED_BACK');
    ids.push(rb.workflowId);

    const cancelled = stuckCode(); // Temporal cancellation while stuck
    const c = await admit(cancelled);
    await blocked(cancelled);
    await h.client.workflow.getHandle(c.workflowId).cancel();
    assert.equal(await ended(c.workflowId), 'cancelled');
    ids.push(c.workflowId);

    const invalid = `replay-invalid-${randomInt(1e9)}`; // bad input that skipped the client's validation
    await h.client.workflow.start('dotBirthAdmit', { taskQueue: h.taskQueue, workflowId: invalid, args: [{ code: '' }] });
    assert.equal(await ended(invalid), 'INVALID_INPUT');
    ids.push(invalid);

    const histories: { workflowId: string; history: unknown }[] = [];
    for (const workflowId of ids) {
      histories.push({ workflowId, history: await h.client.workflow.getHandle(workflowId).fetchHistory() });
    }
    const replayed: string[] = [];
    for await (const result of Worker.runReplayHistories({ workflowBundle: await workflowBundle() }, histories)) {
      assert.equal(result.error, undefined, `${result.workflowId}: ${result.error?.message}`);
      replayed.push(result.workflowId);
    }
    assert.deepEqual(replayed.sort(), [...ids].sort());
  });
});
