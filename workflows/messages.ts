// The names operators and DOTs use to talk to a running admission. Shared by the workflow (handlers)
// and the client (senders); the payloads are the zod schemas in contracts/admission.ts.
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  AdmissionState,
  AttachUpdate,
  BreakGlassSignal,
  CancelSignal,
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
/** Sent with every admit (update-with-start): validated, answers with the state the caller attached to. */
export const attachUpdate = defineUpdate<AdmissionState, [AttachUpdate]>('attach');
