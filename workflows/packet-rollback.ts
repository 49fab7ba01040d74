// packetRollback — `birthgate rollback --to N` as a workflow (issue 9 item 1): the downs of every step
// above N, in reverse, with the same lock discipline as applyPacket (the packet lease from the first
// activity to the last, the advisory lock inside each). As the direct runner (packet/apply.ts
// rollbackPacket): the plan and every planned down's precheck come first, and one refusal refuses the
// whole rollback before any down runs (BG428, nothing changed); a step not applied is skipped; a
// rollback to 0 takes birthgate_worker's grants with it.
//
// Its id is `packet-rollback:<system identifier>:<database>`: one rollback per estate database at a
// time (a second `rollback --to` with the same N attaches). It runs on the packet's task queue, in the
// packet worker the CLI hosts. Deterministic: no I/O here.
import { allHandlersFinished, condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { BeginRunResult } from '../contracts/packet.ts';
import { describeIssues, PacketFailure, PacketRollbackInput, type PacketRollbackResult, packetRollbackWorkflowId } from '../contracts/packet.ts';
import { badRequest, endRun, finish, type Outcome } from './apply-packet.ts';
import { packetActivities, packetErrorOf, packetFailure, PacketRecord } from './packet-record.ts';

export async function packetRollback(raw: PacketRollbackInput): Promise<PacketRollbackResult> {
  const parsed = PacketRollbackInput.safeParse(raw);
  if (!parsed.success) throw packetFailure(badRequest(`invalid rollback workflow input: ${describeIssues(parsed.error)}`));
  const input = parsed.data;
  const { workflowId, runId } = workflowInfo();
  if (workflowId !== packetRollbackWorkflowId(input.estate)) {
    throw packetFailure(badRequest(`the packet rollback of ${input.estate.database} runs only as ${packetRollbackWorkflowId(input.estate)}, not ${workflowId}`));
  }
  const rec = new PacketRecord('rollback', workflowId, input.estate, input.requestedBy, input.to);
  const a = packetActivities();
  const ctx = { estate: input.estate, holder: { workflowId, workflowRun: runId }, stepsRoot: input.stepsRoot };
  rec.enter('STARTING', null, 'the packet lease');

  let begun: BeginRunResult | undefined;
  let outcome: Outcome;
  try {
    begun = await a.beginPacketRun({ ...ctx, kind: 'rollback', target: input.to });
    Object.assign(rec.state, { ledgerRunId: begun.ledgerRunId, entryHash: begun.entryHash, entryGovernedHash: begun.entryGovernedHash, door: begun.door, appliedAtEntry: begun.appliedThrough });
    rec.enter('ROLLING_BACK', null, null);
    outcome = await rollDown(rec, a, { ...ctx, ledgerRunId: begun.ledgerRunId }, begun, input.to);
  } catch (err) {
    outcome = isCancellation(err) ? { status: 'stopped', note: 'the workflow was cancelled' } : { status: 'failed', error: packetErrorOf(err, rec.state.step) };
    if (!begun && outcome.error?.code === PacketFailure.Busy) return finish(rec, outcome);
  }
  if (outcome.status === 'rolled_back') rec.state.step = input.to;
  const end = await endRun(a, ctx, rec, outcome, { ledgerRunId: begun?.ledgerRunId ?? null, dropWorker: input.to === 0 });
  if (!begun || outcome.status !== 'rolled_back') return finish(rec, outcome);
  await condition(allHandlersFinished);
  return { workflowId, status: 'rolled_back', to: input.to, ledgerRunId: begun!.ledgerRunId, steps: rec.state.rolledBack, entryHash: begun!.entryHash, exitHash: end.exitHash };
}

type RunCtx = { estate: PacketRollbackInput['estate']; holder: { workflowId: string; workflowRun: string }; stepsRoot?: string; ledgerRunId: string };

async function rollDown(rec: PacketRecord, a: ReturnType<typeof packetActivities>, ctx: RunCtx, begun: BeginRunResult, to: number): Promise<Outcome> {
  try {
    await a.planPacketRollback({ ...ctx, to });
  } catch (err) {
    if (isCancellation(err)) throw err;
    const e = packetErrorOf(err, null);
    return { status: e.code === PacketFailure.Precondition ? 'refused' : 'failed', error: e };
  }
  for (const s of begun.steps.filter((x) => x.step > to).reverse()) {
    rec.enter('ROLLING_BACK', s.step, null);
    try {
      rec.rolledBack(await a.rollbackPacketStep({ ...ctx, step: s.step }));
    } catch (err) {
      if (isCancellation(err)) throw err;
      const e = packetErrorOf(err, s.step);
      const sofar = rec.state.rolledBack.filter((v) => v.action === 'down').map((v) => v.step).join(', ') || 'nothing';
      return { status: e.code === PacketFailure.Precondition ? 'refused' : 'failed', error: { ...e, message: `${e.message}; rolled back so far: ${sofar}` } };
    }
  }
  return { status: 'rolled_back' };
}
