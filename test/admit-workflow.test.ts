// Workflow logic of dotBirthAdmit with in-memory activities on the real dev server: the process,
// parking and operator decisions, compensations and their failure. The database-backed behaviour
// is in admit.test.ts; this file pins down what the workflow does with each answer it gets.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { WorkflowFailedError } from '@temporalio/client';
import type { AdmissionActivities } from '../activities/index.ts';
import type { Blocker, PermitView } from '../contracts/admission.ts';
import { admitByCode, cancel, listStuck, retry, rollback, status } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { breakGlassSignal } from '../workflows/messages.ts';
import { PermitId } from '../contracts/search-attributes.ts';
import { eventually, type RunningWorker, startMockWorker, temporalClient, uniqueTaskQueue } from './support/temporal.ts';

type Ledger = { permits: Map<string, PermitView>; calls: string[] };

/** In-memory stand-ins with the same contracts as activities/: enough ledger to answer consistently. */
function mockActivities(ledger: Ledger, behaviour: {
  blockers?: (code: string, n: number) => Blocker[];
  retireFailures?: number;
  insertFails?: boolean;
  beforeConfirm?: () => Promise<void>;
  /** openAdmission finds its key already holding a RESERVED permit while stopped (a re-run after a lost answer). */
  openFindsHeldPermit?: boolean;
}) {
  let nextId = 1;
  const preflights = new Map<string, number>();
  let retireFailures = behaviour.retireFailures ?? 0;
  const byKey = new Map<string, string>(); // idempotency key → permit id, as uq_permit_idem
  const openPermit = (i: { idempotencyKey: string; code: string; collection: string }, state: 'REQUESTED' | 'RESERVED'): PermitView => {
    const known = byKey.get(i.idempotencyKey);
    if (known) return ledger.permits.get(known)!;
    const p: PermitView = { permitId: String(nextId++), state, entityCode: i.code, collection: i.collection, expiresAt: new Date(Date.now() + 9e5).toISOString(), breakGlass: false, breakGlassId: null, rowId: null, birthId: null };
    ledger.permits.set(p.permitId, p);
    byKey.set(i.idempotencyKey, p.permitId);
    return p;
  };
  const stopConditions = (code: string) => {
    const n = (preflights.get(code) ?? 0) + 1;
    preflights.set(code, n);
    return { blockers: behaviour.blockers?.(code, n) ?? [], familyFlag: true, collectionManaged: true, codePattern: null, killSwitch: false };
  };
  const acts: Pick<AdmissionActivities, 'preflight' | 'openAdmission' | 'requestPermit' | 'issuePermit' | 'insertGovernedRow' | 'confirmFinalized' | 'withdrawPermit' | 'retireBirth' | 'readAdmission'> = {
    async preflight({ code }) {
      ledger.calls.push(`preflight:${code}`);
      return stopConditions(code);
    },
    // fn_admission_open: the stop-conditions, and the RESERVED permit only when nothing stops the admission.
    async openAdmission(i) {
      ledger.calls.push(`open:${i.code}`);
      const report = stopConditions(i.code);
      if (report.blockers.length === 0) return { report, permit: { ...openPermit(i, 'RESERVED') } };
      return { report, permit: behaviour.openFindsHeldPermit ? { ...openPermit(i, 'RESERVED') } : null };
    },
    async requestPermit(i) {
      ledger.calls.push(`request:${i.code}`);
      return { ...openPermit(i, 'REQUESTED') };
    },
    async issuePermit(i) {
      ledger.calls.push(`issue:${i.code}`);
      const p = openPermit(i, 'RESERVED');
      if (p.state === 'REQUESTED') p.state = 'RESERVED'; // fn_permit_issue reserves a requested permit
      return { ...p };
    },
    async insertGovernedRow(i) {
      ledger.calls.push(`insert:${i.code}${i.breakGlass ? `:bg=${i.breakGlass.approvalId}` : ''}`);
      if (behaviour.insertFails) throw ApplicationFailure.create({ type: 'GATE_REFUSED', message: 'no permit', nonRetryable: true });
      const p = ledger.permits.get(i.permitId)!;
      Object.assign(p, { state: 'FINALIZED', rowId: '100', birthId: '200', breakGlass: i.breakGlass !== null, breakGlassId: i.breakGlass ? '7' : null });
      return { rowId: '100', breakGlassId: p.breakGlassId };
    },
    async confirmFinalized({ permitId }) {
      await behaviour.beforeConfirm?.();
      const p = ledger.permits.get(permitId)!;
      return { permit: p, rowId: p.rowId, birthId: p.birthId, birthStatus: 'born' };
    },
    async readAdmission({ permitId }) {
      const p = ledger.permits.get(permitId)!;
      return { permit: p, rowId: p.rowId, birthId: p.birthId, birthStatus: p.birthId ? 'born' : null };
    },
    async withdrawPermit({ permitId, to }) {
      ledger.calls.push(`withdraw:${permitId}:${to}`);
      const p = ledger.permits.get(permitId)!;
      if (p.state === 'REQUESTED' || p.state === 'RESERVED') p.state = to;
      return { action: 'done', detail: p.state };
    },
    async retireBirth({ permitId }) {
      ledger.calls.push(`retire:${permitId}`);
      if (retireFailures-- > 0) throw ApplicationFailure.create({ type: 'PRECONDITION_FAILED', message: 'retire refused', nonRetryable: true });
      const p = ledger.permits.get(permitId)!;
      return p.state === 'FINALIZED' ? { action: 'done', detail: 'retired', birthId: p.birthId } : { action: 'nothing-to-undo', detail: p.state, birthId: null };
    },
  };
  return acts;
}

const codeRule: Blocker = { kind: 'code_rule', detail: 'code does not match ^[A-Z]+-[0-9]+$' };
const op = { actor: 'op@test', reason: 'ticket OPS-1' };

describe('dotBirthAdmit workflow logic (mock activities, real dev server)', () => {
  let t: Awaited<ReturnType<typeof temporalClient>>;
  before(async () => (t = await temporalClient()));
  after(async () => t.close());

  async function withWorker(behaviour: Parameters<typeof mockActivities>[1], fn: (tq: string, ledger: Ledger) => Promise<void>) {
    const ledger: Ledger = { permits: new Map(), calls: [] };
    const taskQueue = uniqueTaskQueue('wf-logic');
    const w: RunningWorker = await startMockWorker({ taskQueue, activities: mockActivities(ledger, behaviour) });
    try {
      await fn(taskQueue, ledger);
    } finally {
      await w.stop();
    }
  }
  const code = (p: string) => `${p}-${Math.floor(Math.random() * 1e9)}`;

  test('a clear admission runs preflight → permit → insert → finalize and returns the linked ids', async () => {
    await withWorker({}, async (taskQueue, ledger) => {
      const c = code('HAPPY');
      const { result } = await admitByCode(t.client, { code: c }, { taskQueue, wait: true });
      assert.equal(result?.stage, 'FINALIZED');
      assert.deepEqual([result?.permitId, result?.rowId, result?.birthId, result?.breakGlass], ['1', '100', '200', false]);
      assert.deepEqual(ledger.calls, [`open:${c}`, `insert:${c}`], 'the first check reserved the permit: no separate issue');
      const s = await status(t.client, { code: c });
      assert.equal(s.status, 'COMPLETED');
      assert.deepEqual(s.state?.transitions.map((x) => x.stage), ['PREFLIGHT', 'PERMIT_ISSUED', 'INSERTING', 'FINALIZING', 'FINALIZED']);
    });
  });

  test('a stop-condition parks the birth; break-glass admits it under the approval', async () => {
    await withWorker({ blockers: () => [codeRule] }, async (taskQueue, ledger) => {
      const c = code('stuck');
      await admitByCode(t.client, { code: c }, { taskQueue });
      const stuck = await eventually(async () => (await listStuck(t.client)).find((s) => s.code === c), 'the stuck birth in visibility');
      assert.equal(stuck.stage, 'BLOCKED');
      assert.match(stuck.blockers.join(), /code_rule/);
      // --older-than counts from when it parked, not from when it started.
      assert.equal((await listStuck(t.client, { olderThanMs: 3_600_000 })).find((x) => x.code === c), undefined);
      assert.ok((await listStuck(t.client, { olderThanMs: 1 })).some((x) => x.code === c));
      // The re-read after parking happened (the open, then a preflight); the stuck birth holds a REQUESTED permit, none reserved.
      await eventually(async () => (ledger.calls.filter((x) => x === `preflight:${c}`).length === 1 ? true : undefined), 're-read');
      assert.deepEqual(ledger.calls, [`open:${c}`, `request:${c}`, `preflight:${c}`]);
      const parked = (await status(t.client, { code: c })).state;
      assert.deepEqual([parked?.permit?.permitId, parked?.permit?.state], ['1', 'REQUESTED']);
      const handle = t.client.workflow.getHandle(parked!.workflowId);
      assert.equal((await handle.describe()).typedSearchAttributes.get(PermitId), '1');
      const meta = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
      assert.match(meta.currentDetails ?? '', /Permit 1 \(REQUESTED\)/);
      // A break-glass that names no ledger entry (the Web UI's bare signal) is refused and recorded;
      // the one that names the operator's entry is acted on.
      const h = t.client.workflow.getHandle(admissionWorkflowId('dot_tools', c));
      await h.signal(breakGlassSignal, { ...op, approvalId: 'APPR-8' });
      await eventually(async () => ((await status(t.client, { code: c })).state?.decisions.length === 1 ? true : undefined), 'bare break-glass settled');
      assert.deepEqual((await status(t.client, { code: c })).state?.decisions.map((d) => [d.kind, d.accepted]), [['breakGlass', false]]);
      await h.signal(breakGlassSignal, { ...op, approvalId: 'APPR-9', breakGlassId: '7' });
      // A signal has no answer and a short park is still a park for `wait`: follow the run to its end.
      await admitByCode(t.client, { code: c }, { taskQueue });
      const result = await t.client.workflow.getHandle(admissionWorkflowId('dot_tools', c)).result();
      assert.equal(result?.breakGlass, true);
      assert.equal(result?.breakGlassId, '7');
      assert.equal(result?.permitId, '1', 'the requested permit is the one reserved and used');
      // A fresh preflight runs before the break-glass is acted on (its blockers, not the ones the operator saw).
      assert.deepEqual(ledger.calls, [`open:${c}`, `request:${c}`, `preflight:${c}`, `preflight:${c}`, `issue:${c}`, `insert:${c}:bg=APPR-9`]);
    });
  });

  test('break-glass cannot override a kill switch; retry re-runs preflight; cancel withdraws the requested permit, nothing issued', async () => {
    await withWorker({ blockers: () => [{ kind: 'kill_switch', detail: 'admissions halted' }] }, async (taskQueue, ledger) => {
      const c = code('KILL');
      await admitByCode(t.client, { code: c }, { taskQueue });
      // Parked first: signals that reach the workflow in its very first activation are dispatched in
      // handler-registration order (the SDK's buffered signals), not in the order they were sent.
      await eventually(async () => ((await status(t.client, { code: c })).state?.stage === 'BLOCKED' ? true : undefined), 'BLOCKED');
      await t.client.workflow.getHandle(admissionWorkflowId('dot_tools', c)).signal(breakGlassSignal, { ...op, approvalId: 'APPR-1', breakGlassId: '1' });
      await retry(t.client, { code: c }, { actor: 'op@test' });
      const s = await eventually(async () => {
        const st = (await status(t.client, { code: c })).state;
        return st && st.decisions.length >= 2 && st.stage === 'BLOCKED' ? st : undefined;
      }, 'both decisions settled');
      assert.deepEqual(s.decisions.map((d) => [d.kind, d.accepted]), [['breakGlass', false], ['retry', true]]);
      await cancel(t.client, { code: c }, op);
      const err = await t.client.workflow.getHandle(s.workflowId).result().catch((e) => e);
      assert.ok(err instanceof WorkflowFailedError);
      assert.equal((err.cause as ApplicationFailure).type, 'ADMISSION_CANCELLED');
      assert.ok(!ledger.calls.some((x) => x.startsWith('issue:') || x.startsWith('insert:')));
      assert.equal(ledger.calls.filter((x) => x.startsWith('request:')).length, 1, 'requested once, not on every retry');
      assert.deepEqual(ledger.calls.filter((x) => x.startsWith('withdraw:')), ['withdraw:1:CANCELLED']);
      assert.equal(ledger.permits.get('1')?.state, 'CANCELLED');
    });
  });

  test('a stop-condition cleared by the re-read after parking lets the admission go on by itself', async () => {
    await withWorker({ blockers: (_c, n) => (n === 1 ? [codeRule] : []) }, async (taskQueue, ledger) => {
      const c = code('CLEARS');
      // A signal has no answer and a short park is still a park for `wait`: follow the run to its end.
      await admitByCode(t.client, { code: c }, { taskQueue });
      const result = await t.client.workflow.getHandle(admissionWorkflowId('dot_tools', c)).result();
      assert.equal(result?.stage, 'FINALIZED');
      assert.equal(result?.permitId, '1');
      assert.deepEqual(ledger.calls, [`open:${c}`, `request:${c}`, `preflight:${c}`, `issue:${c}`, `insert:${c}`]);
      const s = await status(t.client, { code: c });
      assert.equal(s.state?.decisions.at(-1)?.note, 'stop-condition cleared on re-read');
    });
  });

  test('a failed step withdraws the permit as FAILED and the workflow fails with the cause', async () => {
    await withWorker({ insertFails: true }, async (taskQueue, ledger) => {
      const c = code('FAILS');
      const err = await admitByCode(t.client, { code: c }, { taskQueue, wait: true }).catch((e) => e);
      assert.ok(err instanceof WorkflowFailedError);
      assert.equal((err.cause as ApplicationFailure).type, 'ADMISSION_FAILED');
      assert.match(err.cause!.message, /GATE_REFUSED/);
      assert.deepEqual(ledger.calls.slice(-2), ['retire:1', 'withdraw:1:FAILED']);
    });
  });

  test('rollback while running retires what committed; a failing compensation parks until an operator retries it', async () => {
    let release!: () => void;
    const confirmHeld = new Promise<void>((r) => (release = r));
    await withWorker({ retireFailures: 1, beforeConfirm: () => confirmHeld }, async (taskQueue, ledger) => {
      const c = code('COMP');
      await admitByCode(t.client, { code: c }, { taskQueue });
      await eventually(async () => ((await status(t.client, { code: c })).state?.stage === 'FINALIZING' ? true : undefined), 'FINALIZING');
      const rolledBack = rollback(t.client, { code: c }, op, { taskQueue });
      await eventually(async () => ((await status(t.client, { code: c })).state?.decisions.some((d) => d.kind === 'rollback') ? true : undefined), 'rollback recorded');
      release();
      const parked = await eventually(async () => {
        const st = (await status(t.client, { code: c })).state;
        return st?.stage === 'COMPENSATION_FAILED' ? st : undefined;
      }, 'COMPENSATION_FAILED');
      assert.match(parked.error?.message ?? '', /retire refused/);
      const listed = await eventually(async () => (await listStuck(t.client)).find((x) => x.code === c && x.stage === 'COMPENSATION_FAILED'), 'listed as stuck');
      assert.match(listed.waitingFor ?? '', /retry/);
      await retry(t.client, { code: c }, { actor: 'op@test', reason: 'repaired grants' });
      const r = await rolledBack;
      assert.equal(r.via, 'signal');
      const s = await status(t.client, { code: c });
      assert.equal(s.state?.stage, 'ROLLED_BACK');
      assert.deepEqual(s.state?.compensations.done, ['remove row and retire birth', 'withdraw permit']);
      assert.deepEqual(ledger.calls.filter((x) => /^(retire|withdraw)/.test(x)), ['retire:1', 'retire:1', 'withdraw:1:CANCELLED']);
    });
  });

  test('Temporal cancellation of a stuck birth closes it as cancelled and withdraws its requested permit', async () => {
    await withWorker({ blockers: () => [codeRule] }, async (taskQueue, ledger) => {
      const c = code('TCANCEL');
      const { workflowId } = await admitByCode(t.client, { code: c }, { taskQueue });
      await eventually(async () => ((await status(t.client, { code: c })).state?.stage === 'BLOCKED' ? true : undefined), 'BLOCKED');
      await t.client.workflow.getHandle(workflowId).cancel();
      const err = await t.client.workflow.getHandle(workflowId).result().catch((e) => e);
      assert.ok(err instanceof WorkflowFailedError);
      assert.ok(err.cause instanceof CancelledFailure);
      assert.equal((await status(t.client, { code: c })).state?.stage, 'CANCELLED');
      assert.deepEqual(ledger.calls.filter((x) => /^(request|issue|withdraw)/.test(x)), [`request:${c}`, 'withdraw:1:CANCELLED']);
    });
  });

  test('an open that is stopped but finds its key holding a permit (a re-run) holds that permit: parked without a request, withdrawn on cancel', async () => {
    await withWorker({ blockers: () => [codeRule], openFindsHeldPermit: true }, async (taskQueue, ledger) => {
      const c = code('REOPEN');
      const { workflowId } = await admitByCode(t.client, { code: c }, { taskQueue });
      const parked = await eventually(async () => {
        const st = (await status(t.client, { code: c })).state;
        return st?.stage === 'BLOCKED' ? st : undefined;
      }, 'BLOCKED');
      assert.deepEqual([parked.permit?.permitId, parked.permit?.state], ['1', 'RESERVED'], 'the permit the open answered with is held');
      await cancel(t.client, { code: c }, op);
      const err = await t.client.workflow.getHandle(workflowId).result().catch((e) => e);
      assert.equal(((err as WorkflowFailedError).cause as ApplicationFailure).type, 'ADMISSION_CANCELLED');
      assert.deepEqual(ledger.calls.filter((x) => /^(open|request|issue|insert|withdraw)/.test(x)), [`open:${c}`, 'withdraw:1:CANCELLED'],
        'no second permit requested; the held one withdrawn');
      assert.equal(ledger.permits.get('1')?.state, 'CANCELLED');
    });
  });
});
