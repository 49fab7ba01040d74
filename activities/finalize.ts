// Confirming the deferred finalize (DESIGN §4 step 4): after the insert's COMMIT the permit must be
// FINALIZED with the row and the birth linked. FINALIZED means "finalized in a committed transaction"
// (DESIGN §3), so anything else after a successful insert is an invariant breach, not a retry case.
import type { Pool } from '../db/pool.ts';
import { AdmissionLedger, FailureType } from '../contracts/admission.ts';
import { dbStep, nonRetryable, parseInput } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';
import { PermitRef, readLedger } from './permits.ts';

export function finalizeActivities(pool: Pool, hooks: ActivityHooks) {
  return {
    async confirmFinalized(raw: PermitRef): Promise<AdmissionLedger> {
      const i = parseInput(PermitRef, raw, 'confirmFinalized');
      const ledger = await dbStep('fn_admission_state', () => readLedger(pool, i.permitId));
      if (ledger.permit.state !== 'FINALIZED' || ledger.rowId === null || ledger.birthId === null) {
        throw nonRetryable(
          FailureType.FINALIZE_NOT_CONFIRMED,
          `permit ${i.permitId} is ${ledger.permit.state} (row ${ledger.rowId ?? 'none'}, birth ${ledger.birthId ?? 'none'}) after its insert committed`,
          ledger,
        );
      }
      hooks.at('after-confirm-finalized');
      return ledger;
    },
  };
}
