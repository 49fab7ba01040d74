// applyPacket — the KB-7D57 apply packet (sql/apply/01…16) as a durable workflow (DESIGN §5, issue 9
// item 1): the lease, the backup and the entry drift check first, then every step in strict order as
// an activity (the packet runner's applyStep: verify before up, so a retried step redoes only what did
// not commit), and between step 6 and step 7 — the one-way door — a wait for the owner.
//
// Decisions (packet/README.md "The packet as a workflow" has the rest):
// - One packet workflow per estate database: its id is `apply-packet:<system identifier>:<database>`
//   (contracts/packet.ts), which it checks; the client starts it with USE_EXISTING, so a second
//   `birthgate apply` attaches, and ALLOW_DUPLICATE, so a finished packet can be run again (a no-op:
//   every step verifies and is skipped).
// - Its task queue is per estate database too (`birthgate-packet:<…>`): the activities hold the
//   estate's ADMIN pool, so they run only in a packet worker the CLI hosts while it drives the packet
//   (`birthgate apply | approve | rollback --to`), never in the least-privilege admission worker.
// - Lock discipline: each activity takes the packet advisory lock for its own duration; the packet
//   lease (birthgate_ledger.packet_lease) names this workflow run from the first activity to the last,
//   so the direct runner, the rehearsal and a second workflow are refused meanwhile. The last activity
//   (endPacketRun) always runs, in a non-cancellable scope, and releases it.
// - The door: the owner's approval is a Workflow Update (`approvePacket`) whose validator refuses
//   unless the packet waits at the door, the owner and approval id are valid, and — with
//   `--expect` — the governed hash the owner approved is the door's. An accepted approval is checked
//   against the catalog as it is now (a change while the packet waited refuses it, with the new hash);
//   then step 7 runs with the owner and approval id, which the runner records before the one-way
//   statement (and refuses without: BG428).
// - A failure before the door rolls back, in reverse, the steps this run applied and proves the
//   catalog is back at the entry fingerprint (row counts aside). A failure at or past the door parks
//   the packet (PARKED) for an operator: `retry` re-runs the failed step, `stop` ends the run where it
//   stands. Never an automatic rollback past the door (KB-3A66 §5).
// - Outcomes: applied and stopped complete the workflow (its result); refused, rolled back and failed
//   fail it with the packet's code as the failure type and the structured view in its details.
// Deterministic: no I/O here; every side effect is in activities/packet.ts.
import { allHandlersFinished, CancellationScope, condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import type { BeginRunResult } from '../contracts/packet.ts';
import {
  ApplyPacketInput, type ApplyPacketResult, describeIssues, PacketFailure, type PacketErrorView, type PacketFailureDetails, packetWorkflowId,
  type StepInfo, type StepView,
} from '../contracts/packet.ts';
import { packetActivities, packetErrorOf, packetFailure, PacketRecord } from './packet-record.ts';

type Acts = ReturnType<typeof packetActivities>;
type Ctx = { estate: ApplyPacketInput['estate']; holder: { workflowId: string; workflowRun: string }; stepsRoot?: string };
export type Outcome = { status: 'applied' | 'rolled_back' | 'refused' | 'failed' | 'stopped'; error?: PacketErrorView; note?: string };

const FINAL_STAGE = { applied: 'APPLIED', rolled_back: 'ROLLED_BACK', refused: 'REFUSED', failed: 'FAILED', stopped: 'STOPPED' } as const;

export async function applyPacket(raw: ApplyPacketInput): Promise<ApplyPacketResult> {
  const parsed = ApplyPacketInput.safeParse(raw);
  if (!parsed.success) throw packetFailure(badRequest(`invalid packet workflow input: ${describeIssues(parsed.error)}`));
  const input = parsed.data;
  const { workflowId, runId } = workflowInfo();
  // One packet per estate database: under any other id a second packet could run beside the first.
  if (workflowId !== packetWorkflowId(input.estate)) {
    throw packetFailure(badRequest(`the packet of ${input.estate.database} runs only as ${packetWorkflowId(input.estate)}, not ${workflowId}`));
  }
  const rec = new PacketRecord('apply', workflowId, input.estate, input.requestedBy, input.through ?? null);
  const a = packetActivities();
  const ctx: Ctx = { estate: input.estate, holder: { workflowId, workflowRun: runId }, stepsRoot: input.stepsRoot };
  rec.enter('STARTING', null, 'the packet lease, the backup and the entry drift check');

  let begun: BeginRunResult | undefined;
  let outcome: Outcome;
  try {
    begun = await a.beginPacketRun({ ...ctx, kind: 'apply', target: input.through ?? null, expectGovernedHash: input.expectGovernedHash });
    Object.assign(rec.state, {
      ledgerRunId: begun.ledgerRunId, entryHash: begun.entryHash, entryGovernedHash: begun.entryGovernedHash, door: begun.door,
      backupDir: begun.backup?.dir ?? null, appliedAtEntry: begun.appliedThrough, target: input.through ?? begun.lastStep,
    });
    outcome = begun.refusal ? { status: 'refused', error: begun.refusal } : await applySteps(rec, a, ctx, begun, input.through ?? begun.lastStep, input.expectLiveMd5);
  } catch (err) {
    outcome = isCancellation(err)
      ? { status: 'stopped', note: 'the workflow was cancelled', error: rec.state.error ?? undefined }
      : { status: 'failed', error: packetErrorOf(err, rec.state.step) };
    // Refused at the lease: another run holds it, so there is nothing of ours to end.
    if (!begun && outcome.error?.code === PacketFailure.Busy) return finish(rec, outcome);
  }
  const appliedSteps = rec.state.steps.filter((v) => v.action === 'up').length;
  const end = await endRun(a, ctx, rec, outcome, { ledgerRunId: begun?.ledgerRunId ?? null, grantWorker: input.grantWorker, appliedSteps });
  if (!begun || (outcome.status !== 'applied' && outcome.status !== 'stopped')) return finish(rec, outcome);
  await condition(allHandlersFinished);
  return {
    workflowId,
    status: outcome.status,
    through: rec.state.target ?? 0,
    ledgerRunId: begun!.ledgerRunId,
    steps: rec.state.steps,
    entryHash: begun!.entryHash,
    exitHash: end.exitHash,
    governedHash: end.governedHash,
    backupDir: rec.state.backupDir,
    workerRole: end.workerRole,
    note: outcome.note ?? null,
  };
}

/** The steps through `through`, the door's wait included; returns how the run ends. */
async function applySteps(rec: PacketRecord, a: Acts, ctx: Ctx, begun: BeginRunResult, through: number, expectLiveMd5?: Record<string, string>): Promise<Outcome> {
  const { door, ledgerRunId } = begun;
  const appliedHere: StepInfo[] = [];
  let governed = begun.entryGovernedHash;
  let approval: { owner?: string; approvalId?: string } = {};
  for (const s of begun.steps.filter((x) => x.step <= through)) {
    const pastDoor = door !== null && (s.step >= door || begun.appliedThrough >= door);
    // KB-7D57 "Stop and get explicit owner sign-off between step 6 and step 7" — unless this estate is already past it.
    if (s.requiresApproval && begun.appliedThrough < s.step) {
      rec.state.doorGovernedHash = governed;
      rec.enter('WAITING_FOR_OWNER', s.step, `the owner's approval of step ${s.step} (${s.title}), the one-way door: \`birthgate approve --owner NAME --approval ID\``);
      const answer = await rec.awaitApproval(async () => {
        const nowHash = await a.packetGovernedHash({ ...ctx, ledgerRunId });
        const was = rec.state.doorGovernedHash;
        if (nowHash === was) return undefined;
        rec.state.doorGovernedHash = nowHash;
        return `approval refused: the catalog changed while the packet waited at the door (governed hash ${was} → ${nowHash}); look again, then approve with --expect ${nowHash}`;
      });
      if ('stop' in answer) return { status: 'stopped', note: `withdrawn at the door (step ${s.step}) by ${answer.stop.actor}${answer.stop.reason ? `: ${answer.stop.reason}` : ''}; steps before it stay applied` };
      approval = { owner: answer.owner, approvalId: answer.approvalId };
    }
    for (;;) {
      rec.enter('APPLYING', s.step);
      try {
        const { governedHash, ...out } = await a.applyPacketStep({ ...ctx, ledgerRunId, step: s.step, ...approval, rerunSelfUndoing: begun.appliedThrough <= s.step, ...(expectLiveMd5 ? { expectLiveMd5 } : {}) });
        rec.stepDone(out);
        governed = governedHash;
        if (out.action === 'up' && !s.selfUndoing) appliedHere.push(s);
        break;
      } catch (err) {
        if (isCancellation(err)) throw err;
        const e = packetErrorOf(err, s.step);
        rec.failed(e);
        if (e.code === PacketFailure.Precondition && s.requiresApproval) {
          // The door's own refusal (no approval reached it) is the designed stop, not a failure: what came
          // before stays. Any other precondition refused before the door (a live body of an unexpected
          // shape or md5, steps 4/5) is a failure like any other: the downs run and the entry is proven.
          const kept = rec.state.steps.map((d) => `${d.step}:${d.action}`).join(' ') || 'none';
          return { status: 'refused', error: { ...e, message: `${e.message}; steps before ${s.step} stay applied (${kept})` } };
        }
        if (!pastDoor) return rollBack(rec, a, ctx, ledgerRunId, s, appliedHere, e);
        rec.enter('PARKED', s.step, `an operator: step ${s.step} failed at or past the one-way door (step ${door}), and nothing is rolled back automatically (KB-3A66 §5): \`birthgate packet retry\` or \`birthgate packet stop\``);
        const d = await rec.awaitDecision();
        if (d.action === 'stop') {
          return { status: 'stopped', error: { ...e, code: PacketFailure.StoppedPastOneWay }, note: `stopped by ${d.actor} after step ${s.step} failed past the one-way door${d.reason ? `: ${d.reason}` : ''}` };
        }
        rec.state.error = null;
      }
    }
  }
  return { status: 'applied' };
}

/** Before the door: the downs of what this run applied, in reverse (a failed CONCURRENTLY step's leftovers too), then the proof. */
async function rollBack(rec: PacketRecord, a: Acts, ctx: Ctx, ledgerRunId: string, failed: StepInfo, appliedHere: StepInfo[], e: PacketErrorView): Promise<Outcome> {
  const toUndo = [...(failed.concurrently ? [...appliedHere, failed] : appliedHere)].reverse();
  try {
    for (const x of toUndo) {
      rec.enter('ROLLING_BACK', x.step, null);
      rec.rolledBack(await a.rollbackPacketStep({ ...ctx, ledgerRunId, step: x.step }));
    }
  } catch (rbErr) {
    if (isCancellation(rbErr)) throw rbErr;
    const message = `step ${failed.step} failed (${e.message}) and the automatic rollback failed too: ${packetErrorOf(rbErr, null).message} — the catalog is between states; run \`birthgate rollback --to N\``;
    return { status: 'failed', error: { ...e, code: PacketFailure.RollbackMismatch, message } };
  }
  const proof = await a.provePacketRun({ ...ctx, ledgerRunId });
  rec.state.proof = proof;
  const undone = rec.state.rolledBack.map((v) => v.step).join(', ') || 'nothing';
  if (!proof.equal) {
    return { status: 'failed', error: { ...e, code: PacketFailure.RollbackMismatch, message: `step ${failed.step} failed and was rolled back (${undone}), but the catalog differs from the entry fingerprint at ${proof.diff.join(', ')}` } };
  }
  return { status: 'rolled_back', error: { ...e, message: `${e.message}; rolled back ${undone} — catalog back at the entry fingerprint ${proof.entryHash.slice(0, 12)}…` } };
}

/** The ledger run closed and the lease released — whatever happened before, even under cancellation. */
export async function endRun(
  a: Acts, ctx: Ctx, rec: PacketRecord, outcome: Outcome, o: { ledgerRunId: string | null; grantWorker?: boolean; appliedSteps?: number; dropWorker?: boolean },
): Promise<{ exitHash: string; governedHash: string; workerRole: boolean }> {
  // The stage says how it ends before the last activity runs: a caller waiting for the packet to
  // leave WAITING_FOR_OWNER or PARKED (a stop) must not take the closing run for a wait.
  if (outcome.error) rec.failed(outcome.error);
  rec.enter(FINAL_STAGE[outcome.status], rec.state.step);
  rec.settleRemaining(`the packet is ending ${outcome.status}`);
  return CancellationScope.nonCancellable(() =>
    a.endPacketRun({
      ...ctx, ledgerRunId: o.ledgerRunId, status: outcome.status, errorCode: outcome.error?.code, error: outcome.error?.message.slice(0, 4000),
      grantWorker: o.grantWorker ?? false, appliedSteps: o.appliedSteps ?? 0, dropWorker: o.dropWorker ?? false,
    }));
}

/** Show the end; a run that did not apply (or stop) fails the workflow with its packet code and details. */
export async function finish(rec: PacketRecord, outcome: Outcome): Promise<never> {
  rec.settleRemaining(`the packet ended ${outcome.status}`);
  if (outcome.error) rec.failed(outcome.error);
  rec.enter(FINAL_STAGE[outcome.status], rec.state.step);
  await condition(allHandlersFinished);
  const e = outcome.error ?? { code: PacketFailure.StepFailed, message: outcome.status, step: null, sqlstate: null, runId: null };
  const details: PacketFailureDetails = { ...e, proof: rec.state.proof, rolledBack: rec.state.rolledBack as StepView[] };
  throw packetFailure(details);
}

export function badRequest(message: string): PacketErrorView {
  return { code: PacketFailure.BadRequest, message, step: null, sqlstate: null, runId: null };
}
