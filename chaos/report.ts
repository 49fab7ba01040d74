// The table a chaos run prints (and writes with --report): the no-fault run and the fault run of one
// seed side by side — admissions and how they ended, faults injected by kind, retries observed, the
// operators' decisions, throughput and latency — then every invariant with what it counted.
import os from 'node:os';
import type { InjectedFault } from './faults.ts';
import type { Invariant } from './invariants.ts';
import { FAULT_LABELS, FaultKind } from './plan.ts';

export type PhaseReport = {
  label: 'no faults' | 'faults';
  database: string;
  taskQueue: string;
  admissions: number;
  /** How each admission ended, as Temporal says. */
  ends: Record<string, number>;
  faults: Record<FaultKind, number>;
  injected: InjectedFault[];
  retries: {
    /** Activity-task attempts past the first, from the admissions' histories. */
    activityAttempts: number;
    /** Local-activity attempts past the first (their markers), from the admissions' histories. */
    localActivityAttempts: number;
    /** Workflow tasks that timed out (a worker killed holding one; a sticky queue not served in time), from the histories. */
    workflowTaskTimeouts: number;
    /** Workflow tasks that failed, from the histories. */
    workflowTaskFailures: number;
    /** The harness's own calls retried while a server was away. */
    clientCalls: number;
    /** Worker processes that died on their own and were started again. */
    workerRestarts: number;
  };
  operators: { duplicateStarts: number; retry: number; breakGlass: number; cancel: number; rollback: number; refused: number;
    dimParks: number; dimBreakGlass: number; dimCleared: number; unexpectedParks: number; continuedAsNew: number };
  /** Admissions that ran more than once (continue-as-new), with their runs, from visibility. */
  continuedAsNew: Array<{ code: string; kind: string; runs: number }>;
  /** What the Schedules and the handoff did while the admissions ran (before the end's own ticks). */
  schedules: { permitExpiryTicks: number; driftWatchTicks: number; handoffBatches: number };
  latency: { samples: number; p50: number | null; p95: number | null; p99: number | null; max: number | null };
  throughput: number;
  admissionPhaseMs: number;
  wallMs: number;
  invariants: Invariant[];
};

export type ChaosReport = {
  seed: string;
  engine: string;
  engineDescription: string;
  admissions: number;
  concurrency: number;
  workers: number;
  machine: string;
  setupMs: number;
  totalMs: number;
  phases: PhaseReport[];
  ok: boolean;
  /** The run's scratch folder (servers' data, logs); removed when every invariant held. */
  workdir: string;
  /** Where the logs are, when they were kept (a breach or a failure). */
  scratch?: string;
};

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model.trim() ?? 'cpu'} ×${cpus.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.release()}, node ${process.version}`;
}

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const breachCount = (p: PhaseReport) => p.invariants.reduce((n, i) => n + i.breaches.length, 0);

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd());
}

const ms = (v: number | null) => (v === null ? '—' : `${Math.round(v)} ms`);
const secs = (v: number) => `${(v / 1000).toFixed(1)} s`;

export function formatReport(r: ChaosReport): string {
  const ph = r.phases;
  const col = (f: (p: PhaseReport) => string | number) => ph.map((p) => String(f(p)));
  const endKeys = [...new Set(ph.flatMap((p) => Object.keys(p.ends)))].sort();
  const rows: string[][] = [
    ['', ...ph.map((p) => p.label)],
    ['admissions', ...col((p) => p.admissions)],
    ...endKeys.map((k) => [`  ended ${k}`, ...col((p) => p.ends[k] ?? 0)]),
    ['faults injected', ...col((p) => Object.values(p.faults).reduce((a, b) => a + b, 0))],
    ...FaultKind.map((k) => [`  ${FAULT_LABELS[k]}`, ...col((p) => p.faults[k])]),
    ['retries observed', ...col((p) => p.retries.activityAttempts + p.retries.localActivityAttempts + p.retries.workflowTaskTimeouts
      + p.retries.workflowTaskFailures + p.retries.clientCalls + p.retries.workerRestarts)],
    ['  activity attempts past the first (tasks / local)', ...col((p) => `${p.retries.activityAttempts} / ${p.retries.localActivityAttempts}`)],
    ['  workflow tasks timed out / failed', ...col((p) => `${p.retries.workflowTaskTimeouts} / ${p.retries.workflowTaskFailures}`)],
    ['  client calls retried (server away)', ...col((p) => p.retries.clientCalls)],
    ['  workers that died on their own, restarted', ...col((p) => p.retries.workerRestarts)],
    ['operators and DOTs', ...col(() => '')],
    ['  duplicate starts (attached)', ...col((p) => p.operators.duplicateStarts)],
    ['  retries / break-glass / cancels / rollbacks', ...col((p) => `${p.operators.retry} / ${p.operators.breakGlass} / ${p.operators.cancel} / ${p.operators.rollback}`)],
    ['  decisions refused (looked at again)', ...col((p) => p.operators.refused)],
    ['  parks on the stop-condition', ...col((p) => p.operators.dimParks)],
    ['    of codes the rule admits: break-glass / retried once cleared', ...col((p) => `${p.operators.dimBreakGlass} / ${p.operators.dimCleared}`)],
    ['  parks on a blocker no fault raised (retried)', ...col((p) => p.operators.unexpectedParks)],
    ['  stuck births continued as new', ...col((p) => p.operators.continuedAsNew)],
    ['schedules while admitting: expiry / drift ticks, handoff batches', ...col((p) => `${p.schedules.permitExpiryTicks} / ${p.schedules.driftWatchTicks} / ${p.schedules.handoffBatches}`)],
    ['throughput (admissions/s)', ...col((p) => p.throughput.toFixed(2))],
    ['latency admit → FINALIZED, no operator: p50', ...col((p) => ms(p.latency.p50))],
    ['  p95', ...col((p) => ms(p.latency.p95))],
    ['  p99', ...col((p) => ms(p.latency.p99))],
    ['  max (samples)', ...col((p) => `${ms(p.latency.max)} (${p.latency.samples})`)],
    ['admission phase / whole run', ...col((p) => `${secs(p.admissionPhaseMs)} / ${secs(p.wallMs)}`)],
  ];
  const out = [
    `chaos run — seed ${r.seed}, engine ${r.engine}, ${r.admissions} admissions, concurrency ${r.concurrency}, ${r.workers} worker processes`,
    `machine: ${r.machine}`,
    `engine: ${r.engineDescription}`,
    `setup ${secs(r.setupMs)}, total ${secs(r.totalMs)}`,
    '',
    ...table(rows),
  ];
  for (const p of ph) {
    out.push('', `invariants (${p.label}, database ${p.database}):`);
    const inv = [['invariant', 'checked', 'breaches', ''], ...p.invariants.map((i) => [i.name, String(i.checked), String(i.breaches.length), i.breaches.length ? 'BREACH' : 'holds'])];
    out.push(...table(inv).map((l) => `  ${l}`));
    for (const i of p.invariants) {
      if (i.note) out.push(`    ${i.name}: ${i.note}`);
      for (const b of i.breaches) out.push(`    ✗ ${i.name}: ${b}`);
    }
  }
  out.push('', r.ok ? 'every invariant held' : `INVARIANTS BREACHED — replay with --seed ${r.seed}${r.scratch ? `; logs kept in ${r.scratch}` : ''}`);
  return out.join('\n');
}
