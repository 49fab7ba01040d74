// The governed row: one transaction per admission (DESIGN §3/§4). The insert goes through the permit
// gate (RESERVED → CONSUMED); its COMMIT fires the deferred finalize (CONSUMED → FINALIZED, birth
// linked). A rolled-back transaction leaves the permit RESERVED, so a retry is always safe.
import { z } from 'zod';
import type { Pool } from '../db/pool.ts';
import { CollectionName, DbId, EntityCode, FailureType, InsertedRow, RowFields, sqlStateFailureType } from '../contracts/admission.ts';
import { BreakGlassEntry } from './break-glass.ts';
import { dbStep, nonRetryable, parseInput, toFailure } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';
import { readLedger } from './permits.ts';
import { guardedSql } from './statement-guard.ts';

export const InsertGovernedRowInput = z.strictObject({
  permitId: DbId,
  collection: CollectionName,
  code: EntityCode,
  fields: RowFields,
  breakGlass: BreakGlassEntry.nullable(),
});
export type InsertGovernedRowInput = z.infer<typeof InsertGovernedRowInput>;

/** One SQL insert function per governed family (CONTRACT.md); dot_tools is the pilot (KB-4410 §C). */
const insertFunctionByCollection: Readonly<Record<string, { name: string; text: string }>> = {
  dot_tools: { name: 'birthgate.insert.dot_tools', text: 'SELECT row_id FROM fn_admission_insert_dot_tools($1::bigint, $2::jsonb)' },
};

export function governedRowActivities(pool: Pool, hooks: ActivityHooks) {
  /** The row this permit already admitted, if its transaction committed (the lost-ack case). */
  async function alreadyAdmitted(permitId: string): Promise<InsertedRow | undefined> {
    const ledger = await readLedger(pool, permitId);
    if (ledger.permit.state !== 'FINALIZED' || ledger.rowId === null) return undefined;
    return { rowId: ledger.rowId, breakGlassId: ledger.permit.breakGlassId };
  }

  return {
    /**
     * Insert the governed row under the permit, optionally past the code rule under the break-glass
     * entry an operator opened on this permit. Idempotent: when an earlier attempt committed (its
     * acknowledgement lost), the committed row is found through the permit and returned.
     */
    async insertGovernedRow(raw: InsertGovernedRowInput): Promise<InsertedRow> {
      const startedAt = Date.now();
      const i = parseInput(InsertGovernedRowInput, raw, 'insertGovernedRow');
      const insertSql = insertFunctionByCollection[i.collection];
      if (!insertSql) throw nonRetryable(FailureType.INVALID_INPUT, `no governed insert for collection ${i.collection}`);

      // A break-glass insert needs the operator's ledger entry on this very permit (the gate exempts
      // the code rule by the permit's entry; nothing else does).
      if (i.breakGlass) {
        const ledger = await dbStep('read permit before break-glass insert', () => readLedger(pool, i.permitId));
        if (ledger.permit.breakGlassId === null || ledger.permit.breakGlassId !== i.breakGlass.breakGlassId) {
          throw nonRetryable(FailureType.GATE_REFUSED,
            `permit ${i.permitId} carries break-glass entry ${ledger.permit.breakGlassId ?? 'none'}, not ${i.breakGlass.breakGlassId ?? 'none'}: ` +
            'an operator opens the entry with `birthgate break-glass`');
        }
      }

      // One statement, its own transaction: its implicit COMMIT fires the deferred finalize before the
      // statement returns. Under the statement guard: cancelled (or out of time) while the insert or the
      // finalize waits, its backend is cancelled and nothing commits (statement-guard.ts). (No BEGIN …
      // COMMIT around it: two round trips more for the same atomicity.)
      let inserted: InsertedRow;
      try {
        inserted = await guardedSql(pool, `insert into ${i.collection} under permit ${i.permitId}`, { startedAt }, async (tx) => {
          const { rows } = await tx.query<{ row_id: string }>({ ...insertSql, values: [i.permitId, JSON.stringify(i.fields)] });
          return { rowId: String(rows[0]!.row_id), breakGlassId: i.breakGlass?.breakGlassId ?? null };
        });
      } catch (err) {
        // A concurrent or earlier attempt may have consumed the permit and committed: that is success.
        const code = (err as { code?: string }).code;
        if (code && sqlStateFailureType[code] === FailureType.GATE_REFUSED) {
          const committed = await dbStep('read permit after refusal', () => alreadyAdmitted(i.permitId));
          if (committed) return committed;
        }
        throw toFailure(err, `insert into ${i.collection} under permit ${i.permitId}`);
      }
      hooks.at('after-insert-commit');
      return InsertedRow.parse(inserted);
    },
  };
}
