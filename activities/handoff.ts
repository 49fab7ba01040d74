// The governance handoff's one activity (KB-35E7 §5): one batch of the cursor tail. The batch is one
// SQL statement, fn_governance_handoff_batch (sql/apply/18-governance-handoff), which hands off up to
// `limit` rows of each tail and advances the cursor in the same transaction. So whatever happens to
// this attempt — the worker killed after the COMMIT and before the report, a timeout, a retry on
// another worker — the next attempt hands off the rows after the cursor, never the same rows twice.
// The database decides; this validates, runs the statement under the statement guard (a cancelled or
// timed-out attempt cancels its backend, which rolls the batch back) and reads the answer.
import { z } from 'zod';
import { FailureType } from '../contracts/admission.ts';
import type { Pool } from '../db/pool.ts';
import { dbStep, nonRetryable, parseInput } from './failures.ts';
import { guardedSql } from './statement-guard.ts';

/** Rows of each tail per batch: the SQL function refuses more (BG400). */
export const MAX_HANDOFF_BATCH = 10_000;

export const HandoffBatchInput = z.strictObject({
  /** The estate database the calling workflow serves; a worker connected to another one is refused. */
  database: z.string().min(1).max(63),
  limit: z.number().int().min(1).max(MAX_HANDOFF_BATCH),
  /** Recorded on every batch it writes (birth_handoff_batch.actor): the workflow id. */
  actor: z.string().min(1).max(500),
});
export type HandoffBatchInput = z.infer<typeof HandoffBatchInput>;

const TailJson = z.object({
  handed_off: z.number().int(),
  filled: z.number().int(),
  last_id: z.number().int(),
  gaps_opened: z.string(),
  abandoned: z.number(),
  open_gap_ids: z.number(),
  candidates: z.number().int(),
  events: z.number().int(),
  emitted: z.number().int(),
  more: z.boolean(),
});
const BatchJson = z.object({
  database: z.string(),
  mode: z.enum(['capture', 'emit']),
  ospa: z.number().int(),
  activated: z.boolean(),
  more: z.boolean(),
  changelog: TailJson,
  births: TailJson,
});

const tail = (t: z.infer<typeof TailJson>) => ({
  /** Rows handed off by this batch (new ones after the cursor, and late commits found in gaps). */
  handedOff: t.handed_off,
  /** Of those, rows that committed after a later id and were found in a gap. */
  filled: t.filled,
  lastId: t.last_id,
  /** Ids this batch saw missing behind the newest row it read (a multirange, '' when none). */
  gapsOpened: t.gaps_opened,
  /** Ids given up: never committed (rolled back, skipped by the sequence) — see the step's header. */
  abandoned: t.abandoned,
  /** Ids still awaited after this batch. */
  openGapIds: t.open_gap_ids,
  candidates: t.candidates,
  events: t.events,
  emitted: t.emitted,
  more: t.more,
});
export type HandoffTailReport = ReturnType<typeof tail>;

export type HandoffBatchResult = {
  database: string;
  /** capture: no OSPA covers the handoff; emit: one does. */
  mode: 'capture' | 'emit';
  ospa: number;
  /** This batch activated handoff.object_born in event_type_registry (the first batch under OSPA). */
  activated: boolean;
  /** A tail hit the limit: call again at once. */
  more: boolean;
  changelog: HandoffTailReport;
  births: HandoffTailReport;
};

/** Test hook: runs after the batch committed, before the activity reports it (a throw = a lost report). */
export type HandoffHooks = { afterBatch?(result: HandoffBatchResult): void };

// Missing function or table (step 18 not applied), or no EXECUTE for this login: nothing a retry in the
// next seconds fixes. The workflow shows it as blocked and tries again later.
const NOT_INSTALLED = new Set(['42883', '42P01', '42501']);

export function handoffActivities(pool: Pool, hooks: HandoffHooks = {}) {
  return {
    async handoffBatch(raw: HandoffBatchInput): Promise<HandoffBatchResult> {
      const startedAt = Date.now();
      const i = parseInput(HandoffBatchInput, raw, 'handoffBatch');
      const json = await dbStep('fn_governance_handoff_batch', async () => {
        try {
          const { rows } = await guardedSql(pool, 'fn_governance_handoff_batch', { startedAt }, (c) =>
            c.query<{ r: unknown }>('SELECT fn_governance_handoff_batch($1, $2, $3) AS r', [i.database, i.limit, i.actor]));
          return BatchJson.parse(rows[0]?.r);
        } catch (err) {
          const code = (err as { code?: string }).code ?? '';
          if (!NOT_INSTALLED.has(code)) throw err;
          throw nonRetryable(FailureType.PRECONDITION_FAILED,
            `the governance handoff is not usable here (${(err as Error).message}): apply the packet through step 18 and re-run sql/roles/birthgate_worker.sql`,
            { sqlState: code });
        }
      });
      const result: HandoffBatchResult = {
        database: json.database,
        mode: json.mode,
        ospa: json.ospa,
        activated: json.activated,
        more: json.more,
        changelog: tail(json.changelog),
        births: tail(json.births),
      };
      hooks.afterBatch?.(result);
      return result;
    },
  };
}

export type HandoffActivities = ReturnType<typeof handoffActivities>;
