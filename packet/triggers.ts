// DESIGN §3: the gate, the consume, the row guards, the finalize (and the baselines' append-only guard) are ENABLE ALWAYS (tgenabled = 'A'). With the default 'O',
// `SET session_replication_role = replica` skips both silently; a runner must not leave them so.
import type pg from 'pg';

export const GOVERNED_TRIGGER_FUNCTIONS = [
  'fn_dot_tools_permit_gate', 'fn_dot_tools_permit_consume', 'fn_dot_tools_row_guard', 'fn_dt_finalize', 'fn_drift_baseline_append_only',
  'fn_admission_entry_immutable',
] as const;

export type TriggerState = { table: string; trigger: string; function: string; enabled: string };

export async function governedTriggers(q: Pick<pg.Pool, 'query'>): Promise<TriggerState[]> {
  const r = await q.query<TriggerState>(
    `SELECT t.tgrelid::regclass::text AS table, t.tgname AS trigger, p.proname AS function, t.tgenabled AS enabled
       FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE NOT t.tgisinternal AND p.pronamespace = 'public'::regnamespace AND p.proname = ANY ($1::text[])
      ORDER BY 1, 2`,
    [GOVERNED_TRIGGER_FUNCTIONS],
  );
  return r.rows;
}

/** The governed triggers that are not ENABLE ALWAYS (empty = all good). */
export async function notEnabledAlways(q: Pick<pg.Pool, 'query'>): Promise<TriggerState[]> {
  return (await governedTriggers(q)).filter((t) => t.enabled !== 'A');
}
