// The break-glass ledger `birth_break_glass` (KB-4410 §D, step 15), as the admission sees it. An entry
// is an operator's act: opened in the database by a member of birthgate_operator (fn_break_glass_open,
// client/break-glass.ts), bound to the stuck birth's permit. The worker opens nothing; before the
// insert it checks that the permit carries the entry the operator's decision names, and the gate
// honours the entry by the permit.
import { z } from 'zod';
import { Actor, ApprovalId, DbId, Reason } from '../contracts/admission.ts';

export const BreakGlassEntry = z.strictObject({
  actor: Actor,
  reason: Reason,
  approvalId: ApprovalId,
  workflowId: z.string().min(1),
  /** The ledger entry the operator opened; null = none (refused before any insert). */
  breakGlassId: z.nullable(DbId),
});
export type BreakGlassEntry = z.infer<typeof BreakGlassEntry>;
