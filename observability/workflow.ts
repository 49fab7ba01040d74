// What an admission tells operators from inside the workflow (workflows/admission-record.ts calls it at
// every stage change and at a break-glass): the outcome counters on the SDK's workflow metric meter and
// one log line per stage through the SDK's workflow logger. Bundled into workflow code, so: no Node
// modules, no I/O, nothing but @temporalio/workflow.
//
// Replay-safe by the SDK's design, not by ours: `metricMeter`'s counters drop a value while the
// workflow replays (they check workflowInfo().unsafe.isReplaying before calling the metrics sink, and
// the sink itself is callDuringReplay: false), and `log` goes through the logger sink, which is also
// skipped on replay. A worker restart or a cache eviction therefore never counts an outcome twice.
// Neither is a command: no patch needed (workflows/README.md, rule 3).
import { log, metricMeter } from '@temporalio/workflow';
import type { AdmissionState, Stage } from '../contracts/admission.ts';

/** Admissions by outcome: how each ended, and every park (BLOCKED counted once per park epoch). */
export const ADMISSION_OUTCOMES = 'birthgate_admission_outcomes';
/** Break-glass decisions an admission acted on (the operator's ledger entry admitted it past its blockers). */
export const BREAK_GLASS_USES = 'birthgate_break_glass_uses';

export const COUNTED_OUTCOMES = ['FINALIZED', 'CANCELLED', 'FAILED', 'ROLLED_BACK', 'COMPENSATION_FAILED', 'BLOCKED'] as const;
export type CountedOutcome = (typeof COUNTED_OUTCOMES)[number];
const counted: ReadonlySet<Stage> = new Set<Stage>(COUNTED_OUTCOMES);

/**
 * A failure is a warning, a compensation that failed an error (it parks with something half undone). A
 * park stays INFO: it is the gate working, and birthgate_stuck_births is what alerts on one left waiting.
 * The progress stages of an admission on its way (preflight, permit, insert, finalize) are DEBUG: at INFO
 * a clean admission writes one line, its FINALIZED (BIRTHGATE_LOG_LEVEL=DEBUG shows every stage).
 */
const LEVEL: Partial<Record<Stage, 'debug' | 'warn' | 'error'>> = {
  PREFLIGHT: 'debug',
  PERMIT_ISSUED: 'debug',
  INSERTING: 'debug',
  FINALIZING: 'debug',
  FAILED: 'warn',
  COMPENSATION_FAILED: 'error',
};

/**
 * The admission entered `state.stage`. `newPark`: this BLOCKED starts a park (not the same park
 * re-entered by a run that continued as new), so a park is counted once however long it lasts.
 */
export function stageEntered(state: AdmissionState, newPark: boolean): void {
  const stage = state.stage;
  if (counted.has(stage) && (stage !== 'BLOCKED' || newPark)) {
    // Created per call: a counter object is a plain handle (the sink caches the real one worker-side),
    // and module state is shared between workflows that reuse one V8 context.
    metricMeter
      .createCounter(ADMISSION_OUTCOMES, undefined, 'admissions by outcome: FINALIZED, CANCELLED, FAILED, ROLLED_BACK, COMPENSATION_FAILED, and every BLOCKED park')
      .add(1, { outcome: stage, collection: state.collection });
  }
  const attrs = {
    code: state.code,
    collection: state.collection,
    permitId: state.permit?.permitId ?? null,
    stage,
    waitingFor: state.waitingFor,
    ...(stage === 'BLOCKED' ? { parkEpoch: state.parkEpoch, blockers: state.blockers.map((b) => b.kind) } : {}),
    ...(state.error && (stage === 'FAILED' || stage === 'COMPENSATION_FAILED') ? { error: state.error } : {}),
    ...(stage === 'FINALIZED' && state.birth ? { birthId: state.birth.birthId, breakGlass: state.breakGlass !== null } : {}),
  };
  log[LEVEL[stage] ?? 'info'](`admission ${stage}`, attrs);
}

/** The admission acts on an accepted break-glass: counted, and logged with who approved it. */
export function breakGlassUsed(state: AdmissionState): void {
  metricMeter
    .createCounter(BREAK_GLASS_USES, undefined, 'break-glass decisions an admission acted on')
    .add(1, { collection: state.collection });
  log.warn('admission break-glass', {
    code: state.code,
    collection: state.collection,
    permitId: state.permit?.permitId ?? null,
    actor: state.breakGlass?.actor ?? null,
    approvalId: state.breakGlass?.approvalId ?? null,
  });
}
