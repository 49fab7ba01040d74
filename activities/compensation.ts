// Compensations (DESIGN §4): each reads the ledger and undoes only what is there, so it is safe to
// run after a crash, twice, or for a step whose acknowledgement was lost. History is never deleted:
// a RESERVED permit is cancelled or failed; a finalized admission has its row removed and its birth
// retired (fn_admission_rollback: KB-4410 §D retire transition, whose gate retires only a birth
// without a live row); the permit stays FINALIZED and the break-glass entry stays as the record.
import { z } from 'zod';
import type { Pool } from '../db/pool.ts';
import { Actor, DbId, FailureType, Reason } from '../contracts/admission.ts';
import { dbStep, nonRetryable, parseInput } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';
import { permitView, readLedger } from './permits.ts';

export const WithdrawPermitInput = z.strictObject({
  permitId: DbId,
  to: z.enum(['CANCELLED', 'FAILED']),
  actor: Actor,
  reason: Reason,
});
export type WithdrawPermitInput = z.infer<typeof WithdrawPermitInput>;

export const RetireBirthInput = z.strictObject({ permitId: DbId, actor: Actor, reason: Reason });
export type RetireBirthInput = z.infer<typeof RetireBirthInput>;

export type Undone = { action: 'done' | 'nothing-to-undo'; detail: string };

export function compensationActivities(pool: Pool, hooks: ActivityHooks) {
  return {
    /**
     * A permit not yet used → CANCELLED (operator) or FAILED (a step failed). Used or closed: nothing to do.
     * One SQL call (fn_permit_withdraw locks the permit and moves it, or returns it unchanged): no read
     * that a concurrent insert or operator could make stale before the move. An insert still running
     * holds the permit's lock, so this waits for its outcome (bounded by the role's lock_timeout, then
     * retried): rolled back → withdrawn; committed → FINALIZED, and the birth is the retire's to undo.
     */
    async withdrawPermit(raw: WithdrawPermitInput): Promise<Undone> {
      const i = parseInput(WithdrawPermitInput, raw, 'withdrawPermit');
      const undone = await dbStep(`withdraw permit ${i.permitId}`, async (): Promise<Undone> => {
        const { rows } = await pool.query('SELECT * FROM fn_permit_withdraw($1::bigint, $2, $3, $4)', [i.permitId, i.to, i.actor, i.reason]);
        const permit = permitView(rows[0]);
        if (permit.state === i.to) return { action: 'done', detail: `permit ${i.permitId} → ${i.to}` };
        if (permit.state === 'FINALIZED') {
          // The insert committed after all (it outlived the step that gave up on it): a compensation
          // leaves nothing written, so its row goes and its birth is retired too (idempotent).
          const { rows: r } = await pool.query<{ id: string }>('SELECT fn_admission_rollback($1::bigint, $2, $3) AS id', [i.permitId, i.actor, i.reason]);
          return { action: 'done', detail: `permit ${i.permitId} was FINALIZED by a late commit: row ${permit.rowId ?? '?'} removed, birth ${r[0]!.id} retired` };
        }
        return { action: 'nothing-to-undo', detail: `permit ${i.permitId} is ${permit.state}` };
      });
      hooks.at('after-permit-withdraw');
      return undone;
    },

    /** The row this permit admitted removed, its birth retired (fn_admission_rollback, idempotent). Not finalized: nothing written. */
    async retireBirth(raw: RetireBirthInput): Promise<Undone & { birthId: string | null }> {
      const i = parseInput(RetireBirthInput, raw, 'retireBirth');
      const undone = await dbStep(`retire birth of permit ${i.permitId}`, async (): Promise<Undone & { birthId: string | null }> => {
        const ledger = await readLedger(pool, i.permitId);
        if (ledger.permit.state !== 'FINALIZED') {
          return { action: 'nothing-to-undo', detail: `permit ${i.permitId} is ${ledger.permit.state}: no birth`, birthId: null };
        }
        if (ledger.birthId === null) {
          throw nonRetryable(FailureType.FINALIZE_NOT_CONFIRMED, `permit ${i.permitId} is FINALIZED without a linked birth`);
        }
        const { rows } = await pool.query<{ id: string }>('SELECT fn_admission_rollback($1::bigint, $2, $3) AS id', [i.permitId, i.actor, i.reason]);
        return { action: 'done', detail: `row ${ledger.rowId} removed, birth ${rows[0]!.id} retired`, birthId: String(rows[0]!.id) };
      });
      hooks.at('after-birth-retire');
      return undone;
    },
  };
}
