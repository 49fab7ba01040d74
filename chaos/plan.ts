// What a chaos run does, drawn from the seed before anything starts: the admissions (a code each, and
// what the DOT and the operators do with it) and the fault schedule (which fault, before which
// admission starts). The plan is data, so a failing run prints it and the same seed draws it again;
// only the moments inside the machine (which activity a SIGKILL lands in) are left to timing.
import { Prng } from './prng.ts';

/**
 * What happens to one admission (the seeds' words: a stuck birth, break-glass, a rollback …):
 * - clean: a DOT admits a code the family rule accepts and waits for FINALIZED;
 * - duplicate: the same admission started two to four times at once — one birth;
 * - breakGlass: a code outside the family rule parks; an operator breaks the glass;
 * - retryThenBreakGlass: parks, an operator retries (it parks again), then breaks the glass;
 * - cancelParked: parks, an operator cancels;
 * - rollbackParked: parks, an operator rolls it back (compensations);
 * - rollbackFinalized: born, then rolled back (dotBirthRollback retires the birth);
 * - cancelRace: an operator cancels a clean admission right after its start — either end is right;
 * - leaveParked: parks and nobody decides: it must still be parked, with its reason, at the end;
 * - longPark: parks with a small history budget and is retried until it continued as new, then
 *   an operator breaks the glass.
 */
export const AdmissionKind = [
  'clean', 'duplicate', 'breakGlass', 'retryThenBreakGlass', 'cancelParked', 'rollbackParked', 'rollbackFinalized', 'cancelRace',
  'leaveParked', 'longPark',
] as const;
export type AdmissionKind = (typeof AdmissionKind)[number];

const KIND_WEIGHTS: Record<AdmissionKind, number> = {
  clean: 70, duplicate: 8, breakGlass: 4, retryThenBreakGlass: 2, cancelParked: 3, rollbackParked: 2, rollbackFinalized: 4, cancelRace: 3,
  leaveParked: 2, longPark: 1,
};

/** Kinds whose code breaks the dot_tools family rule (step 13): they park on code_rule. */
export const PARKING_KINDS: readonly AdmissionKind[] = ['breakGlass', 'retryThenBreakGlass', 'cancelParked', 'rollbackParked', 'leaveParked', 'longPark'];

/** The ends each kind may reach (the invariants check these against Temporal and the database). */
export const ALLOWED_ENDS: Record<AdmissionKind, readonly End[]> = {
  clean: ['FINALIZED'],
  duplicate: ['FINALIZED'],
  breakGlass: ['FINALIZED'],
  retryThenBreakGlass: ['FINALIZED'],
  cancelParked: ['CANCELLED'],
  rollbackParked: ['ROLLED_BACK'],
  rollbackFinalized: ['ROLLED_BACK'],
  cancelRace: ['FINALIZED', 'CANCELLED'],
  leaveParked: ['PARKED'],
  longPark: ['FINALIZED'],
};
export type End = 'FINALIZED' | 'CANCELLED' | 'ROLLED_BACK' | 'PARKED';

/** The smallest history budget an admission accepts: a longPark reaches it after a dozen retries. */
export const LONG_PARK_BUDGET = 100;

export type PlannedAdmission = {
  index: number;
  kind: AdmissionKind;
  code: string;
  /** Starts of the same admission beyond the first (duplicate: 1–3). */
  extraStarts: number;
};

export const FaultKind = ['worker-kill', 'temporal-restart', 'postgres-restart', 'backend-terminate', 'stop-condition'] as const;
export type FaultKind = (typeof FaultKind)[number];

export const FAULT_LABELS: Record<FaultKind, string> = {
  'worker-kill': 'worker SIGKILL + a new worker',
  'temporal-restart': 'Temporal server restart',
  'postgres-restart': 'PostgreSQL restart (fast shutdown)',
  'backend-terminate': "pg_terminate_backend of the worker's backends",
  'stop-condition': 'stop-condition (a BLOCK dim) for a while',
};

/** Faults per 100 admissions; every kind at least once in a fault run. */
const FAULTS_PER_100: Record<FaultKind, number> = {
  'worker-kill': 1, 'temporal-restart': 0.5, 'postgres-restart': 0.5, 'backend-terminate': 1, 'stop-condition': 0.6,
};

export type PlannedFault = {
  kind: FaultKind;
  /** Injected right before admission `before` starts (0-based), once the previous fault is done. */
  before: number;
  /** stop-condition: how long it holds; the restarts: how long the server stays down. */
  holdMs: number;
};

export type ChaosPlan = { seed: string; admissions: PlannedAdmission[]; faults: PlannedFault[] };

/**
 * The run's codes carry the run's tag (`run` 1 = no-fault run, 2 = fault run) so the two runs of one
 * seed never share a workflow id on one Temporal server, and the seed's hash so two seeds do not.
 */
function codeFor(kind: AdmissionKind, run: number, seedTag: string, index: number): string {
  const n = `${run}${seedTag}${String(index).padStart(6, '0')}`;
  return PARKING_KINDS.includes(kind) ? `Chaos_${n}` : `DOT-${n}`;
}

export function drawPlan(seed: string, n: number, opts: { run: 1 | 2; faults: boolean }): ChaosPlan {
  const root = new Prng(seed);
  const rng = root.fork('plan');
  const seedTag = String(root.fork('tag').int(1000, 9999));
  // Every kind at least once when there is room (a 60-admission test run sees each behaviour), the
  // rest drawn by weight; then shuffled, so the order is the seed's too.
  const kinds: AdmissionKind[] = [];
  if (n >= AdmissionKind.length * 2) kinds.push(...AdmissionKind);
  while (kinds.length < n) kinds.push(rng.weighted(KIND_WEIGHTS));
  rng.shuffle(kinds);
  const admissions = kinds.map((kind, index) => ({
    index,
    kind,
    code: codeFor(kind, opts.run, seedTag, index),
    extraStarts: kind === 'duplicate' ? rng.int(1, 3) : 0,
  }));

  const faults: PlannedFault[] = [];
  if (opts.faults) {
    const frng = root.fork('faults');
    for (const kind of FaultKind) {
      const count = Math.max(1, Math.round((n / 100) * FAULTS_PER_100[kind]));
      for (let i = 0; i < count; i++) {
        faults.push({
          kind,
          // Spread over the run, not its very start or end, so each fault lands among admissions in flight.
          before: Math.min(n - 1, Math.floor(n * 0.05) + frng.int(0, Math.max(0, Math.floor(n * 0.85) - 1))),
          holdMs: kind === 'stop-condition' ? frng.int(8_000, 20_000) : frng.int(200, 1_500),
        });
      }
    }
    // Same position: the order the seed says.
    frng.shuffle(faults);
    faults.sort((a, b) => a.before - b.before);
  }
  return { seed, admissions, faults };
}

/** A per-code choice that does not depend on timing: which stuck births a BLOCK dim's park ends by break-glass. */
export function dimResolution(seed: string, code: string): 'breakGlass' | 'clear' {
  return new Prng(`${seed}/dim/${code}`).chance(0.5) ? 'breakGlass' : 'clear';
}
