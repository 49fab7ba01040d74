// The entry drift check: before a run touches anything, the catalog must be a state the packet
// knows how to move from. Precisely, a run is refused when any of these fails:
//
//  1. packet prefix — the steps whose verify.sql holds are exactly 1..k for some k (no hole: e.g.
//     step 4 applied while step 3 is not means someone changed the estate by hand);
//  2. expected entry state — sql/runner/entry_state.sql: the 'always' checks (identity columns NOT
//     NULL, no FK into birth_registry, birth bindings present and none disabled, kill switch unset,
//     dot_tools code generation present), and when k = 0 the 'unapplied' checks (KB-2590 as found:
//     UNIQUE(entity_code) present, no composite, both entry conflict targets, no permit ledger, no
//     gate or finalize on dot_tools);
//  3. recorded baseline — the *governed projection* of the live fingerprint equals that of the last
//     state this runner recorded in its ledger (the newest exit fingerprint of a step or of a run that
//     was not refused). It is what the runner left behind; a difference means a governed object
//     changed behind its back — unless an operator accepted it since: a logged rebaseline
//     (fn_drift_rebaseline, step 16) newer than that record, with the drift monitor (check 4) finding
//     nothing after it and the data part of the projection (dot_tools unborn) unchanged, since a
//     rebaseline accepts catalog changes, never data (packet/README.md "Re-running the packet").
//     Before the first run there is nothing recorded and the check says so. When the operator passes
//     the governed hash they rehearsed (`expectGovernedHash`, from the rehearsal report), that hash is
//     authoritative instead: the live state must equal exactly what was rehearsed;
//  4. in-database baselines — once step 16 is applied, fn_drift_check() (comparing with the step-12
//     baselines, KB-3A66 §8) must return no row.
//
// The governed projection (not the whole of `public`, where Directus adds collections every day) is:
// the packet's and the estate's birth functions, the constraints, indexes, triggers and columns of
// the governed tables, every trigger calling a governed function (the 166 bindings, the 16 gates),
// the binding count, permit-table presence and the dot_tools unborn count. Row counts are left out:
// live traffic moves them and they are not schema.
import type pg from 'pg';
import { readSql } from '../db/sql-files.ts';
import { diffFingerprints, fingerprintHash, type Fingerprint, type FingerprintDiff } from './fingerprint.ts';
import type { RecordedState } from './ledger.ts';
import type { PacketStep } from './steps.ts';
import { verifyStepSql, type VerifyResult } from './verify.ts';

export const GOVERNED_TABLES = [
  'birth_registry', 'dot_tools', 'birth_admission_permit', 'birth_admission_permit_transition',
  'dot_config', 'meta_catalog', 'birth_drift_baseline', 'birth_drift_rebaseline', 'birth_break_glass',
  'birth_admission_family', 'birth_admission_guard', 'birth_admission_entry', 'birth_admission_dim', 'birth_admission_pinned',
] as const;

const GOVERNED_FUNCTION = /^(fn_birth|fn_pre_birth_check|fn_permit_|fn_admission_|fn_dt_|fn_dot_tools_|fn_family_|fn_drift_|fn_dim_|fn_gate_drift|fn_ddl_ledger|fn_break_glass|gen_code_dot_tools)/;

const fnName = (signature: string) => signature.replace(/\(.*$/, '');
const tableOfKey = (key: string) => key.split('.')[0]!;
const isGovernedTable = (t: string) => (GOVERNED_TABLES as readonly string[]).includes(t);

export type GovernedProjection = Record<string, unknown>;

export function governedProjection(fp: Fingerprint): GovernedProjection {
  const pick = <T>(o: Record<string, T>, keep: (k: string, v: T) => boolean) =>
    Object.fromEntries(Object.entries(o).filter(([k, v]) => keep(k, v)));
  const governedFns = new Set(Object.keys(fp.functions).filter((k) => GOVERNED_FUNCTION.test(fnName(k))));
  return {
    functions: pick(fp.functions, (k) => governedFns.has(k)),
    constraints: pick(fp.constraints, (k) => isGovernedTable(tableOfKey(k))),
    indexes: pick(fp.indexes, (_k, v) => GOVERNED_TABLES.some((t) => v.def.includes(` ON public.${t} `))),
    triggers: pick(fp.triggers, (k, v) => isGovernedTable(tableOfKey(k)) || GOVERNED_FUNCTION.test(v.function)),
    relations: pick(fp.relations, (k) => isGovernedTable(k) || k.startsWith('v_permit_')),
    birth_trigger_bindings: fp.birth_trigger_bindings,
    permit_table_present: fp.permit_table_present,
    dot_tools_unborn: fp.dot_tools_unborn,
  };
}

export const governedHash = (fp: Fingerprint) => fingerprintHash(governedProjection(fp));

/** Everything but row counts: what "the catalog is back to the entry fingerprint" compares. */
export function catalogPart(fp: Fingerprint): Record<string, unknown> {
  const { row_counts: _ignored, ...rest } = fp;
  return rest;
}

export type DriftCheck = { check: string; ok: boolean; detail: string };

/** An operator's logged rebaseline (birth_drift_rebaseline, written by fn_drift_rebaseline / fn_drift_accept). */
export type OperatorRebaseline = { baselineSet: string; owner: string; reason: string; approvalId: string; login: string; at: string };

export type DriftReport = {
  ok: boolean;
  /** Highest k such that steps 1..k all verify. */
  appliedThrough: number;
  steps: Array<{ step: number } & VerifyResult>;
  checks: DriftCheck[];
  governedHash: string;
  baseline: { runId: string; step: number | null; hash: string; at: string } | null;
  diff: FingerprintDiff[];
  /** The rebaseline that accepted `diff` (check 3), when one did. */
  acceptedBy: OperatorRebaseline | null;
};

export async function stepStates(q: Pick<pg.Pool, 'query'>, steps: PacketStep[]): Promise<Array<{ step: number } & VerifyResult>> {
  const out: Array<{ step: number } & VerifyResult> = [];
  for (const s of steps) out.push({ step: s.step, ...(await verifyStepSql(q, s)) });
  return out;
}

export async function checkEntry(
  q: Pick<pg.Pool, 'query'>,
  steps: PacketStep[],
  opts: { current: Fingerprint; recorded?: RecordedState; expectGovernedHash?: string },
): Promise<DriftReport> {
  const states = await stepStates(q, steps);
  const firstOff = states.findIndex((s) => !s.ok);
  const appliedThrough = firstOff === -1 ? (states.at(-1)?.step ?? 0) : firstOff === 0 ? 0 : states[firstOff - 1]!.step;
  const ahead = states.filter((s) => s.ok && s.step > appliedThrough);
  const checks: DriftCheck[] = [{
    check: 'packet prefix',
    ok: ahead.length === 0,
    detail: ahead.length === 0
      ? `steps 1..${appliedThrough} hold, the rest do not`
      : `steps 1..${appliedThrough} hold but step(s) ${ahead.map((s) => s.step).join(', ')} also hold: a hole, not a packet state`,
  }];

  const entry = await q.query<{ check: string; scope: 'always' | 'unapplied'; ok: boolean; detail: string }>(readSql('runner/entry_state.sql'));
  for (const row of entry.rows) {
    if (row.scope === 'unapplied' && appliedThrough > 0) continue;
    checks.push({ check: row.check, ok: row.ok, detail: row.detail });
  }

  // Check 4 first: check 3 leans on it when an operator's rebaseline accepted a difference.
  const monitor = await driftMonitorCheck(q);
  const hash = governedHash(opts.current);
  let acceptedBy: OperatorRebaseline | null = null;
  let diff: FingerprintDiff[] = [];
  if (opts.recorded) {
    diff = diffFingerprints(governedProjection(opts.recorded.fingerprint), governedProjection(opts.current));
  }
  if (opts.expectGovernedHash) {
    checks.push({
      check: 'rehearsed governed hash',
      ok: hash === opts.expectGovernedHash,
      detail: hash === opts.expectGovernedHash
        ? `governed hash ${hash.slice(0, 12)}… is the rehearsed one`
        : `governed hash ${hash.slice(0, 12)}… differs from the rehearsed ${opts.expectGovernedHash.slice(0, 12)}…`,
    });
    if (diff.length) checks.push({ check: 'recorded baseline', ok: true, detail: `differs from run ${opts.recorded!.runId} in ${diff.length} place(s); accepted: the rehearsed hash is authoritative` });
  } else if (opts.recorded) {
    const r = opts.recorded;
    const paths = `${diff.slice(0, 5).map((d) => d.path).join(', ')}${diff.length > 5 ? ', …' : ''}`;
    const accepted = diff.length ? await acceptance(q, r, opts.current, monitor) : undefined;
    acceptedBy = accepted?.by ?? null;
    checks.push({
      check: 'recorded baseline',
      ok: diff.length === 0 || acceptedBy !== null,
      detail: diff.length === 0
        ? `governed objects as the runner left them (run ${r.runId}${r.step === null ? '' : `, step ${r.step}`})`
        : acceptedBy
          ? `${diff.length} governed difference(s) since run ${r.runId} (${paths}), accepted by the operator's rebaseline ${acceptedBy.baselineSet} (owner ${acceptedBy.owner}, approval ${acceptedBy.approvalId}, login ${acceptedBy.login}, ${acceptedBy.at}): the drift monitor finds nothing since`
          : `${diff.length} governed difference(s) since run ${r.runId}: ${paths}${accepted?.why ? `; ${accepted.why}` : ''}`,
    });
  } else {
    checks.push({ check: 'recorded baseline', ok: true, detail: 'none recorded yet (first run on this database)' });
  }

  const { installed: _installed, ...monitorCheck } = monitor;
  checks.push(monitorCheck);

  return {
    ok: checks.every((c) => c.ok),
    appliedThrough,
    steps: states,
    checks,
    governedHash: hash,
    baseline: opts.recorded ? { runId: opts.recorded.runId, step: opts.recorded.step, hash: opts.recorded.hash, at: opts.recorded.at } : null,
    diff,
    acceptedBy,
  };
}

/**
 * Whether the governed difference since the runner's record was accepted by an operator: the drift
 * watch's baseline describes the governed state the operator accepted, the runner's record the state it
 * left; after a rebaseline the first is the newer word. Accepted only when (a) a logged rebaseline is
 * newer than the record (fn_drift_rebaseline names its sets `rebaseline@…`; the packet's own captures
 * are `step-N@…` and `roles/…`, which accept nothing), (b) the drift monitor (check 4) finds nothing
 * now — no catalog change and no governed DDL since the newest set — so the difference is what the
 * operator accepted and not a change made after it, and (c) the data in the projection is unchanged.
 */
async function acceptance(
  q: Pick<pg.Pool, 'query'>, recorded: RecordedState, current: Fingerprint, monitor: DriftCheck & { installed: boolean },
): Promise<{ by: OperatorRebaseline | null; why: string } | undefined> {
  if (!monitor.installed) return undefined;
  const by = await operatorRebaselineSince(q, recorded.at);
  if (!by) return { by: null, why: `no operator rebaseline since ${recorded.at} accepts it (birthgate rebaseline)` };
  if (!monitor.ok) return { by: null, why: `the rebaseline ${by.baselineSet} does not cover it: the drift monitor reports changes after it` };
  if (recorded.fingerprint.dot_tools_unborn !== current.dot_tools_unborn) {
    return { by: null, why: `dot_tools unborn ${recorded.fingerprint.dot_tools_unborn} → ${current.dot_tools_unborn} is data, which no rebaseline accepts` };
  }
  return { by, why: '' };
}

/** The newest operator rebaseline captured after `since` (an ISO time from the ledger), if any. */
export async function operatorRebaselineSince(q: Pick<pg.Pool, 'query'>, since: string): Promise<OperatorRebaseline | undefined> {
  const has = await q.query<{ ok: boolean }>(`SELECT to_regclass('public.birth_drift_rebaseline') IS NOT NULL AS ok`);
  if (!has.rows[0]?.ok) return undefined;
  // since comes back from the ledger at millisecond precision: a rebaseline within the same
  // millisecond is not counted as after it (refusing is the safe side).
  const r = await q.query<{ baseline_set: string; actor: string; reason: string; approval_id: string; captured_by: string; captured_at: Date }>(
    `SELECT baseline_set, actor, reason, approval_id, captured_by, captured_at FROM public.birth_drift_rebaseline
      WHERE baseline_set LIKE 'rebaseline@%' AND captured_at > $1::timestamptz + interval '1 millisecond'
      ORDER BY rebaseline_id DESC LIMIT 1`,
    [since],
  );
  const row = r.rows[0];
  return row ? { baselineSet: row.baseline_set, owner: row.actor, reason: row.reason, approvalId: row.approval_id, login: row.captured_by, at: row.captured_at.toISOString() } : undefined;
}

/** Check 4: the packet's own drift monitor (step 16), when it is installed. */
async function driftMonitorCheck(q: Pick<pg.Pool, 'query'>): Promise<DriftCheck & { installed: boolean }> {
  const has = await q.query<{ ok: boolean }>(`SELECT to_regprocedure('public.fn_drift_check()') IS NOT NULL AS ok`);
  if (!has.rows[0]?.ok) return { check: 'in-database baselines', ok: true, installed: false, detail: 'fn_drift_check not installed (step 16 not applied)' };
  const r = await q.query<{ kind: string; name: string; drift: string }>('SELECT kind, name, drift FROM fn_drift_check() ORDER BY kind, name');
  return {
    check: 'in-database baselines',
    installed: true,
    ok: r.rows.length === 0,
    detail: r.rows.length === 0 ? 'fn_drift_check(): no drift against the step-12 baselines'
      : `fn_drift_check(): ${r.rows.slice(0, 5).map((d) => `${d.kind} ${d.name} ${d.drift}`).join(', ')}${r.rows.length > 5 ? ', …' : ''}`,
  };
}
