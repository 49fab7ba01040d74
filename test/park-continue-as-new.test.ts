// Issue 8 item 1: a stuck birth keeps its history bounded. Parked and retried again and again (each
// retry is a preflight and a re-park), it continues as new whenever its history passes the budget,
// carrying its permit, blockers, park epoch and the tails of its log; after several runs it is still
// the same admission, and a break-glass admits it under the permit its first run requested.
// Real dev server, real PostgreSQL, the real admission worker, real updates.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { admitByCode, breakGlass, retry, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { eventually } from './support/temporal.ts';

describe('a parked birth continues as new and loses nothing', () => {
  let h: AdmissionHarness;
  before(async () => (h = await admissionHarness('can')));
  after(async () => h?.stop());

  test('many retries: several runs, each history under its budget; the permit, epochs and log carry over; break-glass admits it', async () => {
    const code = `DOT_CAN_${freshCode().slice(4)}`; // outside the family rule: it parks on code_rule
    const budget = 150;
    const parked = await admitByCode(h.client, { code, historyBudget: budget, requestedBy: 'dot-can' }, { taskQueue: h.taskQueue, wait: true });
    assert.equal(parked.parked?.stage, 'BLOCKED');
    const permitId = parked.parked!.permit!.permitId;
    const firstRunId = (await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).describe()).runId;

    let state = parked.parked!;
    for (let i = 0; i < 80 && state.runs < 3; i++) {
      const ack = await retry(h.client, { code }, { actor: 'ops@can.test', reason: `look again ${i}` });
      assert.equal(ack.accepted, true);
      state = await eventually(async () => {
        const s = (await status(h.client, { code })).state;
        return s?.stage === 'BLOCKED' && !s.resuming ? s : undefined;
      }, 'parked again');
    }
    assert.ok(state.runs >= 3, `continued as new at least twice (runs ${state.runs})`);
    assert.equal(state.permit?.permitId, permitId, 'the permit its first run requested');
    assert.equal(state.permit?.state, 'REQUESTED');
    assert.ok(state.parkEpoch > 10, `park epochs carry over (${state.parkEpoch})`);
    assert.ok(state.decisions.length <= 21 && state.decisions.at(-1)?.kind === 'retry', 'a bounded tail of the decision log');
    assert.deepEqual(state.requestedBy, ['dot-can']);

    // Every run's history stayed within the budget (plus the few events of the step that crossed it).
    const runs: string[] = [];
    for await (const w of h.client.workflow.list({ query: `WorkflowId = '${admissionWorkflowId('dot_tools', code)}'` })) runs.push(w.runId);
    assert.ok(runs.length >= 3 && runs.includes(firstRunId));
    for (const runId of runs) {
      const events = (await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code), runId).fetchHistory()).events?.length ?? 0;
      assert.ok(events < budget + 40, `run ${runId}: ${events} events`);
    }
    // Nothing written meanwhile but the one REQUESTED permit.
    const meanwhile = await written(h.db.pool, code);
    assert.deepEqual([meanwhile.rows, meanwhile.births.length, meanwhile.permits.map((p) => [p.permit_id, p.state])], [0, 0, [[permitId, 'REQUESTED']]]);

    // The admission still admits: break-glass (the operator's ledger entry on that permit) → born.
    const ack = await breakGlass(h.client, h.db.pool, { code }, { actor: 'ops@can.test', reason: 'legacy code, after many looks', approvalId: 'CAN-1' });
    assert.equal(ack.accepted, true);
    const result = await h.client.workflow.getHandle(admissionWorkflowId('dot_tools', code)).result();
    assert.equal(result.stage, 'FINALIZED');
    assert.equal(result.permitId, permitId);
    const w = await written(h.db.pool, code);
    assert.deepEqual([w.rows, w.births.length, w.permits.map((p) => [p.permit_id, p.state, p.break_glass])], [1, 1, [[permitId, 'FINALIZED', true]]]);
  });
});
