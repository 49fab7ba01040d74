// The promises of durable execution, checked after a chaos run against the database and Temporal
// (describe, results, visibility), never against the harness's own bookkeeping alone:
//   1. every admission ended FINALIZED, CANCELLED, ROLLED_BACK (an operator's rollback) or parked with a
//      reason, and as its operators decided; no workflow lost (visibility holds every planned one);
//   2. births == FINALIZED permits (retired births == the rolled-back ones); no code born twice; no row
//      without its birth; no birth without its row;
//   3. no permit left REQUESTED, RESERVED or CONSUMED without a live workflow that owns it, and none
//      left for the permit sweep to withdraw (its end-of-run tick would otherwise hide one);
//   4. every break-glass birth has its ledger entry; nothing bypassed the gate without one;
//   5. the catalog fingerprint of the admission objects is unchanged, and the drift watch, with its
//      data-level invariants, reports nothing (and recorded nothing but the injected stop-condition);
//   6. the governance handoff's cursor covered every birth exactly once;
//   7. the Schedules and the handoff ran throughout.
// Each check returns what it counted and the breaches it found (the first few named).
import { type Client, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { type AdmissionResult, admissionWorkflowId, rollbackWorkflowId } from '../contracts/admission.ts';
import { PermitId } from '../contracts/search-attributes.ts';
import type { Pool } from '../db/pool.ts';
import { governedProjection } from '../packet/drift.ts';
import { catalogFingerprint, diffFingerprints, fingerprintHash, type FingerprintDiff } from '../packet/fingerprint.ts';
import { stateQuery } from '../workflows/messages.ts';
import { PERMIT_SWEEP_ACTOR } from '../workflows/schedules.ts';
import { ALLOWED_ENDS, type End, type PlannedAdmission } from './plan.ts';
import type { Call } from './transient.ts';

export type Invariant = { name: string; checked: number; breaches: string[]; note?: string };

/** Where the run began: what existed before it is not the run's to judge (the baseline's defects stay out). */
export type Marks = { rowId: string; birthId: string; permitId: string; breakGlassId: string; findingId: string; governedHash: string; governed: unknown };

export async function takeMarks(admin: Pool): Promise<Marks> {
  const { rows: [m] } = await admin.query<Omit<Marks, 'governedHash' | 'governed'>>(`
    SELECT (SELECT coalesce(max(id), 0) FROM dot_tools)::text AS "rowId",
           (SELECT coalesce(max(id), 0) FROM birth_registry)::text AS "birthId",
           (SELECT coalesce(max(permit_id), 0) FROM birth_admission_permit)::text AS "permitId",
           (SELECT coalesce(max(break_glass_id), 0) FROM birth_break_glass)::text AS "breakGlassId",
           (SELECT coalesce(max(finding_id), 0) FROM birth_drift_finding)::text AS "findingId"`);
  const governed = governedProjection(await catalogFingerprint(admin));
  return { ...m!, governed, governedHash: fingerprintHash(governed) };
}

/** One admission as Temporal has it now. */
export type Observed = {
  code: string;
  kind: PlannedAdmission['kind'];
  end: End | 'FAILED' | 'TERMINATED' | 'TIMED_OUT' | 'NOT_FOUND' | 'RUNNING_NOT_PARKED' | 'CANCELED';
  detail: string;
  result: AdmissionResult | null;
  /** Every run of it (continue-as-new), from visibility. */
  runs: number;
};

export type CheckContext = {
  client: Client;
  admin: Pool;
  taskQueue: string;
  plan: readonly PlannedAdmission[];
  marks: Marks;
  call: Call;
};

const limited = (items: string[], n = 8) => items.slice(0, n);

/**
 * Run `sql` with the run's marks named in it (:birthMark, :rowMark, :permitMark) and `extra` values as
 * :extra1, :extra2 …: only the names a statement uses become its parameters (PostgreSQL refuses a
 * parameter a statement never reads: it cannot type it).
 */
async function marked<T extends object>(ctx: CheckContext, sql: string, extra: unknown[] = []): Promise<T[]> {
  const named: Record<string, unknown> = {
    birthMark: ctx.marks.birthId, rowMark: ctx.marks.rowId, permitMark: ctx.marks.permitId, findingMark: ctx.marks.findingId,
    ...Object.fromEntries(extra.map((v, i) => [`extra${i + 1}`, v])),
  };
  const values: unknown[] = [];
  const order = new Map<string, number>();
  const text = sql.replace(/:(birthMark|rowMark|permitMark|findingMark|extra\d+)\b/g, (_, name: string) => {
    if (!order.has(name)) {
      values.push(named[name]);
      order.set(name, values.length);
    }
    return `$${order.get(name)}`;
  });
  return (await ctx.admin.query<T>(text, values)).rows;
}

async function inParallel<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
  }));
  return out;
}

/** What Temporal says each planned admission ended with (describe, result, state; runs from one visibility listing). */
export async function observeAll(ctx: CheckContext): Promise<Observed[]> {
  const { client } = ctx;
  const runsOf = await ctx.call('list admissions', async () => {
    const runs = new Map<string, number>();
    for await (const w of client.workflow.list({ query: `WorkflowType = 'dotBirthAdmit' AND TaskQueue = '${ctx.taskQueue}'` })) {
      runs.set(w.workflowId, (runs.get(w.workflowId) ?? 0) + 1);
    }
    return runs;
  });
  return inParallel(ctx.plan, 8, (a) => ctx.call(`describe ${a.code}`, async (): Promise<Observed> => {
    const id = admissionWorkflowId('dot_tools', a.code);
    const handle = client.workflow.getHandle(id);
    const runs = runsOf.get(id) ?? 0;
    const base = { code: a.code, kind: a.kind, result: null, runs };
    let d;
    try {
      d = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { ...base, end: 'NOT_FOUND', detail: 'no such workflow' };
      throw err;
    }
    const status = d.status.name;
    if (status === 'COMPLETED') {
      const result = await handle.result() as AdmissionResult;
      const rb = await client.workflow.getHandle(rollbackWorkflowId('dot_tools', a.code)).describe().catch(() => null);
      if (rb?.status.name === 'COMPLETED') return { ...base, result, end: 'ROLLED_BACK', detail: `birth ${result.birthId} retired by dotBirthRollback` };
      return { ...base, result, end: 'FINALIZED', detail: `birth ${result.birthId}` };
    }
    if (status === 'FAILED') {
      const err = await handle.result().then(() => null, (e: unknown) => e);
      const cause = err instanceof WorkflowFailedError ? err.cause : undefined;
      const type = cause instanceof ApplicationFailure ? cause.type : undefined;
      const end = type === 'ADMISSION_CANCELLED' ? 'CANCELLED' : type === 'ADMISSION_ROLLED_BACK' ? 'ROLLED_BACK' : 'FAILED';
      return { ...base, end, detail: `${type ?? 'failure'}: ${cause?.message ?? ''}`.slice(0, 300) };
    }
    if (status === 'RUNNING') {
      const state = await client.withDeadline(Date.now() + 10_000, () => handle.query(stateQuery));
      if ((state.stage === 'BLOCKED' || state.stage === 'COMPENSATION_FAILED') && !state.resuming && state.blockers.length + (state.error ? 1 : 0) > 0) {
        return { ...base, end: 'PARKED', detail: `${state.stage}: ${state.blockers.map((b) => b.kind).join(', ') || state.error?.type}` };
      }
      return { ...base, end: 'RUNNING_NOT_PARKED', detail: `${state.stage}${state.resuming ? ' (resuming)' : ''}` };
    }
    if (status === 'TERMINATED') {
      // Who ended it and why, from its history: a termination is never the product's doing, so the
      // breach names the hand that did it (issue 11: a test's own planted one was read as a product breach).
      const events = (await handle.fetchHistory()).events ?? [];
      const t = events.at(-1)?.workflowExecutionTerminatedEventAttributes;
      return { ...base, end: 'TERMINATED', detail: `by ${t?.identity || 'an unknown identity'}: ${t?.reason || 'no reason given'}`.slice(0, 300) };
    }
    return { ...base, end: status as Observed['end'], detail: status };
  }));
}

export async function checkEnds(ctx: CheckContext, observed: Observed[]): Promise<Invariant[]> {
  const ended = observed.filter((o) => ['FINALIZED', 'CANCELLED', 'ROLLED_BACK', 'PARKED'].includes(o.end));
  const badEnd = observed.filter((o) => !ended.includes(o)).map((o) => `${o.code} (${o.kind}): ${o.end} ${o.detail}`);
  const offPlan = ended.filter((o) => !ALLOWED_ENDS[o.kind].includes(o.end as End)).map((o) => `${o.code} (${o.kind}): ${o.end}, expected ${ALLOWED_ENDS[o.kind].join('|')}`);

  // Visibility: every planned admission is there (observeAll counted its runs from the listing), and
  // nothing else ran an admission on this task queue.
  const seen = await ctx.call('list admissions', async () => {
    const ids = new Set<string>();
    for await (const w of ctx.client.workflow.list({ query: `WorkflowType = 'dotBirthAdmit' AND TaskQueue = '${ctx.taskQueue}'` })) ids.add(w.workflowId);
    return ids;
  });
  const planned = new Set(ctx.plan.map((a) => admissionWorkflowId('dot_tools', a.code)));
  const lost = [...planned].filter((id) => !seen.has(id));
  const strangers = [...seen].filter((id) => !planned.has(id));
  const { rows: orphanPermits } = await ctx.admin.query<{ permit_id: string; workflow_id: string | null }>(
    `SELECT permit_id::text, workflow_id FROM birth_admission_permit WHERE permit_id > $1 ORDER BY permit_id`, [ctx.marks.permitId]);
  const unplanned = orphanPermits.filter((p) => !p.workflow_id || !planned.has(p.workflow_id)).map((p) => `permit ${p.permit_id} of ${p.workflow_id ?? 'no workflow'}`);
  return [
    { name: 'every admission ended FINALIZED, CANCELLED, ROLLED_BACK or parked with a reason', checked: observed.length, breaches: limited(badEnd) },
    { name: 'each ended as its operators decided', checked: ended.length, breaches: limited(offPlan) },
    {
      name: 'no workflow lost (visibility holds every admission; no permit of an unknown workflow)',
      checked: planned.size,
      breaches: limited([...lost.map((id) => `lost ${id}`), ...strangers.map((id) => `unplanned ${id}`), ...unplanned]),
    },
  ];
}

export async function checkBirths(ctx: CheckContext, observed: Observed[]): Promise<Invariant[]> {
  const q = <T extends object>(sql: string) => marked<T>(ctx, sql);
  const [counts] = await q<{ finalized: number; live_finalized: number; rolled_back: number; births: number; born: number; retired: number; linked: number }>(`
    SELECT (SELECT count(*)::int FROM birth_admission_permit p WHERE p.permit_id > :permitMark AND p.state = 'FINALIZED') AS finalized,
           (SELECT count(*)::int FROM birth_admission_permit p WHERE p.permit_id > :permitMark AND p.state = 'FINALIZED' AND p.rollback_txid IS NULL) AS live_finalized,
           (SELECT count(*)::int FROM birth_admission_permit p WHERE p.permit_id > :permitMark AND p.state = 'FINALIZED' AND p.rollback_txid IS NOT NULL) AS rolled_back,
           (SELECT count(*)::int FROM birth_registry b WHERE b.id > :birthMark AND b.collection_name = 'dot_tools') AS births,
           (SELECT count(*)::int FROM birth_registry b WHERE b.id > :birthMark AND b.collection_name = 'dot_tools' AND b.status = 'born') AS born,
           (SELECT count(*)::int FROM birth_registry b WHERE b.id > :birthMark AND b.collection_name = 'dot_tools' AND b.status = 'retired') AS retired,
           (SELECT count(*)::int FROM birth_admission_permit p JOIN birth_registry b ON b.id = p.birth_id
             WHERE p.permit_id > :permitMark AND p.state = 'FINALIZED' AND b.entity_code = p.entity_code AND b.collection_name = p.collection_name
               AND b.jsonb_profile -> 'admission' ->> 'permit_id' = p.permit_id::text) AS linked`);
  const c = counts!;
  const births: string[] = [];
  if (c.finalized !== c.births) births.push(`${c.finalized} FINALIZED permits but ${c.births} births`);
  if (c.live_finalized !== c.born) births.push(`${c.live_finalized} FINALIZED permits not rolled back but ${c.born} born births`);
  if (c.rolled_back !== c.retired) births.push(`${c.rolled_back} rolled-back permits but ${c.retired} retired births`);
  if (c.linked !== c.finalized) births.push(`${c.finalized - c.linked} FINALIZED permits without their birth linked`);
  // Temporal's side. A live birth's permit is exactly the permit of an admission that ended FINALIZED;
  // a retired one belongs to an admission rolled back, or cancelled after its insert committed (the
  // compensation retired what the late commit wrote).
  const { rows: ledger } = await ctx.admin.query<{ permit_id: string; workflow_id: string | null; birth_id: string | null; row_id: string | null; live: boolean }>(
    `SELECT permit_id::text, workflow_id, birth_id::text, row_id::text, rollback_txid IS NULL AS live
       FROM birth_admission_permit WHERE permit_id > $1 AND state = 'FINALIZED'`, [ctx.marks.permitId]);
  const finalized = new Map(observed.filter((o) => o.end === 'FINALIZED' && o.result).map((o) => [o.result!.permitId, o]));
  const endOf = new Map(observed.map((o) => [admissionWorkflowId('dot_tools', o.code), o]));
  for (const p of ledger) {
    const o = p.workflow_id ? endOf.get(p.workflow_id) : undefined;
    if (p.live && !finalized.has(p.permit_id)) births.push(`permit ${p.permit_id} is FINALIZED with a live birth, but ${p.workflow_id} ended ${o?.end ?? 'unknown'}`);
    if (!p.live && !(o && (o.end === 'ROLLED_BACK' || o.end === 'CANCELLED'))) births.push(`permit ${p.permit_id}'s birth is retired, but ${p.workflow_id} ended ${o?.end ?? 'unknown'}`);
  }
  const byId = new Map(ledger.map((p) => [p.permit_id, p]));
  for (const [permitId, o] of finalized) {
    const p = byId.get(permitId);
    if (!p || !p.live || p.birth_id !== o.result!.birthId || p.row_id !== o.result!.rowId) {
      births.push(`${o.code}: its result says permit ${permitId}, birth ${o.result!.birthId}, row ${o.result!.rowId}; the ledger ${p ? `birth ${p.birth_id}, row ${p.row_id}${p.live ? '' : ', rolled back'}` : 'has no FINALIZED permit'}`);
    }
  }
  const twice = await q<{ code: string; n: number }>(`
    SELECT entity_code AS code, count(*)::int AS n FROM birth_registry WHERE collection_name = 'dot_tools' AND id > :birthMark GROUP BY entity_code HAVING count(*) > 1
    UNION ALL
    SELECT entity_code, count(*)::int FROM birth_admission_permit WHERE permit_id > :permitMark AND state = 'FINALIZED' GROUP BY entity_code, collection_name HAVING count(*) > 1`);
  const rowsWithout = await q<{ id: string; code: string }>(`
    SELECT t.id::text, t.code FROM dot_tools t WHERE t.id > :rowMark
       AND NOT EXISTS (SELECT 1 FROM birth_registry b WHERE b.entity_code = t.code AND b.collection_name = 'dot_tools' AND b.status = 'born' AND b.entity_id = t.id)`);
  const birthsWithout = await q<{ id: string; code: string }>(`
    SELECT b.id::text, b.entity_code AS code FROM birth_registry b WHERE b.id > :birthMark AND b.collection_name = 'dot_tools' AND b.status = 'born'
       AND NOT EXISTS (SELECT 1 FROM dot_tools t WHERE t.code = b.entity_code AND t.id = b.entity_id)`);
  const [rowCount] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM dot_tools WHERE id > :rowMark`);
  return [
    { name: 'births == FINALIZED permits (and == the admissions Temporal completed)', checked: c.finalized, breaches: limited(births), note: `${c.born} born, ${c.retired} retired` },
    { name: 'no code born twice', checked: c.births, breaches: limited(twice.map((t) => `${t.code} ×${t.n}`)) },
    { name: 'no row without its birth', checked: rowCount!.n, breaches: limited(rowsWithout.map((r) => `row ${r.id} (${r.code})`)) },
    { name: 'no birth without its row', checked: c.born, breaches: limited(birthsWithout.map((b) => `birth ${b.id} (${b.code})`)) },
  ];
}

export async function checkLivePermits(ctx: CheckContext): Promise<Invariant> {
  const { rows } = await ctx.admin.query<{ permit_id: string; state: string; workflow_id: string | null }>(
    `SELECT permit_id::text, state, workflow_id FROM birth_admission_permit WHERE state IN ('REQUESTED', 'RESERVED', 'CONSUMED') ORDER BY permit_id`);
  const breaches = (await inParallel(rows, 8, (p) => ctx.call(`owner of permit ${p.permit_id}`, async () => {
    if (!p.workflow_id) return `permit ${p.permit_id} ${p.state} names no workflow`;
    const handle = ctx.client.workflow.getHandle(p.workflow_id);
    let d;
    try {
      d = await handle.describe();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return `permit ${p.permit_id} ${p.state}: its workflow ${p.workflow_id} does not exist`;
      throw err;
    }
    if (d.status.name !== 'RUNNING') return `permit ${p.permit_id} ${p.state}: its workflow ${p.workflow_id} is ${d.status.name}`;
    // The workflow owns it: the search attribute it shows, else its own state (a lean admission shows none until it parks).
    if (d.typedSearchAttributes.get(PermitId) === p.permit_id) return null;
    const state = await ctx.client.withDeadline(Date.now() + 10_000, () => handle.query(stateQuery));
    return state.permit?.permitId === p.permit_id ? null : `permit ${p.permit_id} ${p.state}: ${p.workflow_id} holds ${state.permit?.permitId ?? 'no permit'}`;
  }))).filter((b): b is string => b !== null);
  return { name: 'no permit left REQUESTED/RESERVED/CONSUMED without a live workflow that owns it', checked: rows.length, breaches: limited(breaches) };
}

/**
 * The end of a run ticks the permit sweep, which withdraws every live permit whose workflow is closed
 * (its job): by the time checkLivePermits looks, such a permit is gone — so that check alone could not
 * see a permit its admission left behind. The sweep's log can: a chaos run terminates nothing (the
 * harness never does, and no admission times out), so every admission closes its own permit, and a
 * withdrawal "owning workflow … is closed" of one of the run's permits is a permit an admission lost.
 * (A RESERVED permit past its TTL expiring is the sweep's other job, and legitimate: not counted.)
 */
export async function checkSweepWithdrawals(ctx: CheckContext): Promise<Invariant> {
  const rows = await marked<{ permit_id: string; workflow_id: string | null; from_state: string | null; to_state: string; reason: string | null }>(ctx, `
    SELECT t.permit_id::text, p.workflow_id, t.from_state, t.to_state, t.reason
      FROM birth_admission_permit_transition t JOIN birth_admission_permit p USING (permit_id)
     WHERE t.permit_id > :permitMark AND t.actor = :extra1 AND t.reason LIKE 'owning workflow % is closed%'
     ORDER BY t.transition_id`, [PERMIT_SWEEP_ACTOR]);
  const [n] = await marked<{ n: number }>(ctx, `SELECT count(*)::int AS n FROM birth_admission_permit WHERE permit_id > :permitMark`);
  return {
    name: 'no permit left for the sweep to withdraw (every admission closed its own)',
    checked: n!.n,
    breaches: limited(rows.map((r) => `permit ${r.permit_id} of ${r.workflow_id ?? 'no workflow'}: ${r.from_state} → ${r.to_state} by the sweep (${(r.reason ?? '').slice(0, 160)})`)),
  };
}

export async function checkBreakGlass(ctx: CheckContext, observed: Observed[]): Promise<Invariant[]> {
  const q = <T extends object>(sql: string, extra: unknown[] = []) => marked<T>(ctx, sql, extra);
  const noEntry = await q<{ permit_id: string }>(`
    SELECT p.permit_id::text FROM birth_admission_permit p WHERE p.permit_id > :permitMark AND p.break_glass
       AND NOT EXISTS (SELECT 1 FROM birth_break_glass g WHERE g.break_glass_id = p.break_glass_id AND g.permit_id = p.permit_id
                          AND g.entity_code = p.entity_code AND g.collection_name = p.collection_name)`);
  const birthNoEntry = await q<{ id: string }>(`
    SELECT b.id::text FROM birth_registry b WHERE b.id > :birthMark AND b.collection_name = 'dot_tools'
       AND (b.jsonb_profile -> 'admission' ->> 'break_glass')::boolean
       AND NOT EXISTS (SELECT 1 FROM birth_break_glass g WHERE g.permit_id = (b.jsonb_profile -> 'admission' ->> 'permit_id')::bigint)`);
  // A bypass: a code outside the family rule born without an entry, or a row no FINALIZED permit admitted.
  const ruleBypass = await q<{ permit_id: string; code: string }>(`
    SELECT p.permit_id::text, p.entity_code AS code FROM birth_admission_permit p
     WHERE p.permit_id > :permitMark AND p.state = 'FINALIZED' AND NOT p.break_glass
       AND p.entity_code !~ (SELECT m.code_pattern FROM meta_catalog m WHERE m.collection_name = 'dot_tools')`);
  const ungated = await q<{ id: string; code: string }>(`
    SELECT t.id::text, t.code FROM dot_tools t WHERE t.id > :rowMark
       AND NOT EXISTS (SELECT 1 FROM birth_admission_permit p WHERE p.row_id = t.id AND p.entity_code = t.code AND p.state = 'FINALIZED')`);
  // Temporal's side: every result that says break-glass names the entry the ledger holds for its permit.
  const claimed = observed.filter((o) => o.result?.breakGlass);
  const entries = claimed.length
    ? await q<{ permit_id: string; id: string }>('SELECT permit_id::text, break_glass_id::text AS id FROM birth_break_glass WHERE permit_id = ANY((:extra1)::bigint[])',
      [claimed.map((o) => o.result!.permitId)])
    : [];
  const entryOf = new Map(entries.map((e) => [e.permit_id, e.id]));
  const resultNoEntry = claimed.filter((o) => entryOf.get(o.result!.permitId) !== o.result!.breakGlassId)
    .map((o) => `${o.code}: result names entry ${o.result!.breakGlassId}, the ledger ${entryOf.get(o.result!.permitId) ?? 'none'}`);
  const [n] = await q<{ bg: number; rows: number }>(`
    SELECT (SELECT count(*)::int FROM birth_admission_permit WHERE permit_id > :permitMark AND break_glass AND state = 'FINALIZED') AS bg,
           (SELECT count(*)::int FROM dot_tools WHERE id > :rowMark) AS rows`);
  return [
    {
      name: 'every break-glass birth has its ledger entry',
      checked: n!.bg,
      breaches: limited([...noEntry.map((p) => `permit ${p.permit_id}`), ...birthNoEntry.map((b) => `birth ${b.id}`), ...resultNoEntry]),
    },
    {
      name: 'nothing bypassed the gate without one (family rule, FINALIZED permit per row)',
      checked: n!.rows,
      breaches: limited([...ruleBypass.map((p) => `${p.code} born outside the family rule without break-glass (permit ${p.permit_id})`),
        ...ungated.map((r) => `row ${r.id} (${r.code}) has no FINALIZED permit`)]),
    },
  ];
}

export async function checkCatalog(ctx: CheckContext, driftWatch: { open: number; hard: number } | null): Promise<Invariant[]> {
  const now = governedProjection(await catalogFingerprint(ctx.admin));
  const diff: FingerprintDiff[] = fingerprintHash(now) === ctx.marks.governedHash ? [] : diffFingerprints(ctx.marks.governed, now, 8);
  const tick = (await ctx.admin.query<{ dim: string; block_count: string | null; detail: string }>('SELECT dim, block_count::text, detail FROM fn_drift_tick()')).rows;
  const check = (await ctx.admin.query<{ kind: string; name: string; drift: string }>('SELECT kind, name, drift FROM fn_drift_check()')).rows;
  const recorded = (await ctx.admin.query<{ dim: string; detail: string | null; n: number }>(
    `SELECT dim, max(detail) AS detail, count(*)::int AS n FROM birth_drift_finding WHERE finding_id > $1 GROUP BY dim ORDER BY dim`, [ctx.marks.findingId])).rows;
  const injected = recorded.find((r) => r.dim === 'chaos_stop_condition')?.n ?? 0;
  const drift = [
    ...tick.map((t) => `fn_drift_tick: ${t.dim}=${t.block_count ?? 'not computed'}: ${t.detail.slice(0, 120)}`),
    ...check.map((c) => `fn_drift_check: ${c.drift} ${c.kind} ${c.name}`),
    ...recorded.filter((r) => r.dim !== 'chaos_stop_condition').map((r) => `recorded during the run: ${r.dim} ×${r.n} (${(r.detail ?? '').slice(0, 100)})`),
    ...(driftWatch === null ? ['the drift-watch Schedule could not be run at the end']
      : driftWatch.open || driftWatch.hard ? [`the drift-watch tick at the end: ${driftWatch.open} open, ${driftWatch.hard} hard`] : []),
  ];
  return [
    { name: 'the catalog fingerprint of the admission objects is unchanged', checked: Object.keys(ctx.marks.governed as object).length,
      breaches: limited(diff.map((d) => `${d.path}: ${JSON.stringify(d.before)?.slice(0, 60)} → ${JSON.stringify(d.after)?.slice(0, 60)}`)) },
    { name: 'the drift watch and its data-level invariants report nothing', checked: tick.length + check.length + recorded.length + 1, breaches: limited(drift),
      note: `the watch saw the injected stop-condition ${injected} time(s)` },
  ];
}

export async function checkHandoff(ctx: CheckContext): Promise<Invariant> {
  const { rows: [h] } = await ctx.admin.query<{ births: number; missing: number; twice: number; events_twice: number; events_missing: number; sample: string | null }>(`
    WITH births AS (
      SELECT b.id, b.status, b.entity_code FROM birth_registry b
       WHERE b.id > (SELECT k.started_from FROM birth_handoff_cursor k WHERE k.source = 'birth_registry')
    ), handed AS (
      SELECT unnest(x.ids) AS id FROM birth_handoff_batch x WHERE x.source = 'birth_registry'
    ), counted AS (SELECT id, count(*) AS n FROM handed GROUP BY id),
    events AS (
      SELECT (e.payload ->> 'birth_id')::bigint AS id, count(*) AS n FROM event_pending e
       WHERE e.event_type = 'handoff.object_born' AND e.payload ->> 'source' = 'birthgate.governance_handoff' GROUP BY 1
    )
    SELECT (SELECT count(*)::int FROM births) AS births,
           (SELECT count(*)::int FROM births b WHERE NOT EXISTS (SELECT 1 FROM counted c WHERE c.id = b.id)) AS missing,
           (SELECT count(*)::int FROM counted WHERE n > 1) AS twice,
           (SELECT count(*)::int FROM events WHERE n > 1) AS events_twice,
           -- a birth born all along (no status move on record) is handed off as exactly one event
           (SELECT count(*)::int FROM births b WHERE b.status = 'born'
               AND NOT EXISTS (SELECT 1 FROM birth_status_transition s WHERE s.entity_code = b.entity_code AND s.collection_name = 'dot_tools')
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = b.id)) AS events_missing,
           (SELECT string_agg(b.id::text, ', ') FROM (SELECT b.id FROM births b WHERE NOT EXISTS (SELECT 1 FROM counted c WHERE c.id = b.id) LIMIT 5) b) AS sample`);
  const breaches: string[] = [];
  if (h!.missing) breaches.push(`${h!.missing} births never handed off (${h!.sample})`);
  if (h!.twice) breaches.push(`${h!.twice} births handed off more than once`);
  if (h!.events_twice) breaches.push(`${h!.events_twice} births with more than one handoff.object_born event`);
  if (h!.events_missing) breaches.push(`${h!.events_missing} births born all along without their handoff.object_born event`);
  return { name: 'the handoff cursor covered every birth exactly once', checked: h!.births, breaches };
}

/** Births the handoff has not yet covered (the end of a run waits for zero). */
export async function handoffBehind(admin: Pool): Promise<number> {
  const { rows: [r] } = await admin.query<{ n: number }>(`
    SELECT count(*)::int AS n FROM birth_registry b
     WHERE b.id > (SELECT k.started_from FROM birth_handoff_cursor k WHERE k.source = 'birth_registry')
       AND NOT EXISTS (SELECT 1 FROM birth_handoff_batch x WHERE x.source = 'birth_registry' AND b.id = ANY (x.ids))`);
  return r!.n;
}
