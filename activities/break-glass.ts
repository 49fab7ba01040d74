// The break-glass ledger `birth_break_glass` (KB-4410 §D, step 15). An entry admits exactly one insert
// past the family code rule: the gate honours it only when its txid is the inserting transaction's,
// so it must be opened on the same client, inside the same BEGIN … COMMIT as the insert.
import { z } from 'zod';
import type { PoolClient } from '../db/pool.ts';
import { Actor, ApprovalId, CollectionName, DbId, EntityCode, Reason } from '../contracts/admission.ts';

export const BreakGlassEntry = z.strictObject({
  actor: Actor,
  reason: Reason,
  approvalId: ApprovalId,
  workflowId: z.string().min(1),
});
export type BreakGlassEntry = z.infer<typeof BreakGlassEntry>;

/** fn_break_glass_open inside the caller's transaction; returns the ledger id (also stamped on the permit). */
export async function openBreakGlass(
  tx: PoolClient,
  at: { code: z.infer<typeof EntityCode>; collection: z.infer<typeof CollectionName>; permitId: z.infer<typeof DbId> },
  entry: BreakGlassEntry,
): Promise<string> {
  const { rows } = await tx.query<{ break_glass_id: string }>(
    'SELECT break_glass_id FROM fn_break_glass_open($1, $2, $3, $4, $5, $6::bigint, $7)',
    [at.code, at.collection, entry.actor, entry.reason, entry.approvalId, at.permitId, entry.workflowId],
  );
  return String(rows[0]!.break_glass_id);
}
