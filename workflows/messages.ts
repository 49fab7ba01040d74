// The names operators and DOTs use to talk to a running admission. Shared by the workflow (handlers)
// and the client (senders); the payloads are the zod schemas in contracts/admission.ts.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  AdmissionState,
  AttachSignal,
  BreakGlassSignal,
  CancelSignal,
  DecisionAck,
  RetrySignal,
  RollbackSignal,
} from '../contracts/admission.ts';

/** Re-run preflight on a stuck birth (or retry a failed compensation). */
export const retrySignal = defineSignal<[RetrySignal]>('retry');
/** Abandon the admission; compensations run, nothing stays written. */
export const cancelSignal = defineSignal<[CancelSignal]>('cancel');
/** Admit a stuck birth past the gate under a break-glass ledger entry. */
export const breakGlassSignal = defineSignal<[BreakGlassSignal]>('breakGlass');
/** Undo the admission (while running; after completion the client starts dotBirthRollback). */
export const rollbackSignal = defineSignal<[RollbackSignal]>('rollback');
/** The full state: stage, permit, row, birth, blockers, transitions, break-glass. */
export const stateQuery = defineQuery<AdmissionState>('state');
/** Sent with every admit (signal-with-start, USE_EXISTING): the start and the attach are one atomic call. */
export const attachSignal = defineSignal<[AttachSignal]>('attach');

// Operator decisions as Workflow Updates (issue 8): the validator refuses what cannot apply now (the
// refusal goes back to the caller and never reaches history); an accepted decision answers once the
// workflow has acted on it. The signals above stay for compatibility (and the Web UI's forms).
/** Re-run preflight on a stuck birth, or retry a failed compensation. */
export const retryUpdate = defineUpdate<DecisionAck, [RetrySignal]>('retryAdmission');
/** Admit a stuck birth past its overridable stop-conditions under the operator's break-glass ledger entry. */
export const breakGlassUpdate = defineUpdate<DecisionAck, [BreakGlassSignal]>('breakGlassAdmission');
/** Abandon the admission; compensations run, nothing stays written. */
export const cancelUpdate = defineUpdate<DecisionAck, [CancelSignal]>('cancelAdmission');
/** Undo the admission while it runs (after completion the client starts dotBirthRollback). */
export const rollbackUpdate = defineUpdate<DecisionAck, [RollbackSignal]>('rollbackAdmission');
