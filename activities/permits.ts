// The permit ledger `birth_admission_permit` (DESIGN §3): request, issue, transition, read. Every state
// change goes through fn_permit_move (fn_permit_transition for callers), which refuses illegal moves
// (BG422) and logs the transition.
import { z } from 'zod';
import type { Pool, Queryable } from '../db/pool.ts';
import {
  Actor,
  AdmissionLedger,
  CollectionName,
  DbId,
  EntityCode,
  FailureType,
  PermitState,
  PermitView,
  Reason,
} from '../contracts/admission.ts';
import { dbStep, nonRetryable, parseInput } from './failures.ts';
import type { ActivityHooks } from './hooks.ts';

export const IssuePermitInput = z.strictObject({
  idempotencyKey: z.string().min(1).max(400),
  collection: CollectionName,
  code: EntityCode,
  ttlSeconds: z.number().int().positive(),
  actor: Actor,
  workflowId: z.string().min(1),
  runId: z.string().min(1),
});
export type IssuePermitInput = z.infer<typeof IssuePermitInput>;

export const TransitionPermitInput = z.strictObject({
  permitId: DbId,
  to: PermitState,
  actor: Actor,
  reason: Reason,
});
export type TransitionPermitInput = z.infer<typeof TransitionPermitInput>;

export const PermitRef = z.strictObject({ permitId: DbId });
export type PermitRef = z.infer<typeof PermitRef>;

const idOrNull = (v: unknown) => (v === null || v === undefined ? null : String(v));

/** A `birth_admission_permit` row (as SQL or as jsonb) → the contract's view of it. */
export function permitView(row: Record<string, unknown>): PermitView {
  return PermitView.parse({
    permitId: String(row.permit_id),
    state: row.state,
    entityCode: row.entity_code,
    collection: row.collection_name,
    expiresAt: row.expires_at instanceof Date ? row.expires_at.toISOString() : String(row.expires_at),
    breakGlass: row.break_glass === true,
    breakGlassId: idOrNull(row.break_glass_id),
    rowId: idOrNull(row.row_id),
    birthId: idOrNull(row.birth_id),
  });
}

/** fn_admission_state(permit_id) → the permit with its row and birth (CONTRACT.md). */
export async function readLedger(db: Queryable, permitId: string): Promise<AdmissionLedger> {
  // A named statement (issue 8 §6): prepared once per pooled session, so PostgreSQL parses and plans
  // it once, not on every call. Only the admission's hot statements are named, and only those whose
  // result is one column of a fixed type (jsonb here, bigint for the insert): a named statement whose
  // result columns changed under it (a function redefined with another row type) fails on every later
  // call on that session. A function dropped and recreated with its signature is planned afresh.
  const { rows } = await db.query<{ s: Record<string, unknown> | null }>({
    name: 'birthgate.state', text: 'SELECT fn_admission_state($1::bigint) AS s', values: [permitId],
  });
  const s = rows[0]?.s;
  if (!s || typeof s.permit !== 'object' || s.permit === null) {
    throw nonRetryable(FailureType.INVALID_INPUT, `permit ${permitId} does not exist`);
  }
  const permit = permitView(s.permit as Record<string, unknown>);
  return AdmissionLedger.parse({
    permit,
    rowId: idOrNull(s.row_id) ?? permit.rowId,
    birthId: idOrNull(s.birth_id) ?? permit.birthId,
    birthStatus: ((s.birth as { status?: string } | null | undefined)?.status ?? s.birth_status ?? null) as string | null,
  });
}

/** One permit call: fn_permit_request or fn_permit_issue, with the same parameters. */
export async function openPermit(pool: Pool, fn: 'fn_permit_request' | 'fn_permit_issue', i: IssuePermitInput): Promise<PermitView> {
  return dbStep(fn, async () => {
    const { rows } = await pool.query(`SELECT * FROM ${fn}($1, $2, $3, $4, $5, $6, $7)`, [
      i.idempotencyKey, i.code, i.collection, i.ttlSeconds, i.actor, i.workflowId, i.runId,
    ]);
    return permitView(rows[0]);
  });
}

export function permitActivities(pool: Pool, hooks: ActivityHooks) {
  return {
    /**
     * REQUESTED permit for (code, collection): a stuck birth holds its place in the ledger with it
     * while it waits for an operator. Idempotent on the key (the same key issuePermit later uses):
     * a retry returns the same permit, in whatever state it is.
     */
    async requestPermit(raw: IssuePermitInput): Promise<PermitView> {
      const i = parseInput(IssuePermitInput, raw, 'requestPermit');
      return openPermit(pool, 'fn_permit_request', i);
    },

    /**
     * RESERVED permit for (code, collection). Idempotent on the key: a retry returns the same permit;
     * a permit the key holds in REQUESTED (requestPermit, a stuck birth) is reserved now.
     */
    async issuePermit(raw: IssuePermitInput): Promise<PermitView> {
      const i = parseInput(IssuePermitInput, raw, 'issuePermit');
      const permit = await openPermit(pool, 'fn_permit_issue', i);
      hooks.at('after-permit-issue');
      return permit;
    },

    async transitionPermit(raw: TransitionPermitInput): Promise<PermitView> {
      const i = parseInput(TransitionPermitInput, raw, 'transitionPermit');
      return dbStep(`fn_permit_transition → ${i.to}`, async () => {
        const { rows } = await pool.query('SELECT * FROM fn_permit_transition($1::bigint, $2, $3, $4)', [i.permitId, i.to, i.actor, i.reason]);
        return permitView(rows[0]);
      });
    },

    async readAdmission(raw: PermitRef): Promise<AdmissionLedger> {
      const i = parseInput(PermitRef, raw, 'readAdmission');
      return dbStep('fn_admission_state', () => readLedger(pool, i.permitId));
    },
  };
}
