// What an admission knows about itself, and how it shows it (DESIGN §4 "visible in the Temporal UI"):
// every stage change updates the queryable state, the search attributes, the memo `stuck` lists from,
// and the current details the UI shows as "what this birth waits for".
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { setCurrentDetails, upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import type {
  AdmissionCarry,
  AdmissionRequest,
  AdmissionResult,
  AdmissionState,
  Blocker,
  BreakGlassSignal,
  Decision,
  PermitView,
  Stage,
} from '../contracts/admission.ts';
import { BirthCollection, BirthStage, BreakGlass, EntityCode, PermitId } from '../contracts/search-attributes.ts';
import { breakGlassUsed, stageEntered } from '../observability/workflow.ts';

const now = () => new Date().toISOString(); // deterministic inside the workflow sandbox

/** Stages that need a human, or end a birth other than FINALIZED: a lean admission upserts these. */
const SHOWN_STAGES: ReadonlySet<Stage> = new Set<Stage>(['BLOCKED', 'COMPENSATION_FAILED', 'FAILED', 'CANCELLED', 'ROLLED_BACK']);

export class AdmissionRecord {
  readonly state: AdmissionState;
  private continuingPark: boolean;
  private readonly lean: boolean;

  /**
   * `lean` (patched('lean-admission')): search attributes are upserted only when the stage matters to
   * a human — a park, leaving it, a failure or another unhappy end, and the end of a birth that ever
   * showed one. A clean admission upserts nothing: it is found by EntityCode and its execution status
   * (Completed = FINALIZED); its progress is in the current details. Without it, every stage is upserted.
   */
  constructor(workflowId: string, input: AdmissionRequest, opts: { lean?: boolean } = {}) {
    this.lean = opts.lean === true;
    this.continuingPark = input.carry !== undefined;
    this.state = {
      workflowId,
      collection: input.collection,
      code: input.code,
      stage: 'PREFLIGHT',
      waitingFor: null,
      blockers: [],
      permit: null,
      row: null,
      birth: null,
      breakGlass: null,
      transitions: [],
      decisions: [],
      requestedBy: [input.requestedBy],
      compensations: { done: [], pending: [] },
      error: null,
      startedAt: now(),
      result: null,
      parkEpoch: 0,
      resuming: false,
      fields: input.fields,
      runs: 1,
    };
    // A run that continues a parked admission takes its state over (bounded tails, the permit it holds).
    const c = input.carry;
    if (c) {
      Object.assign(this.state, {
        startedAt: c.startedAt, permit: c.permit, blockers: c.blockers, parkEpoch: c.parkEpoch,
        decisions: c.decisions, transitions: c.transitions, requestedBy: c.requestedBy, runs: c.runs + 1,
      });
      // The run that continues a park inherits its search attributes (continue-as-new copies them):
      // still BLOCKED, holding its permit. Its re-check before it parks again is part of the same park.
      if (this.lean) this.shown = { stage: 'BLOCKED', permitId: c.permit?.permitId ?? null, breakGlass: false };
    }
  }

  get stage(): Stage {
    return this.state.stage;
  }

  /** Move to `stage`; `waitingFor` says in words what has to happen next. */
  enter(stage: Stage, waitingFor: string | null, note = ''): void {
    const s = this.state;
    const parkEpoch = s.parkEpoch;
    if (stage === 'BLOCKED' && s.stage !== 'BLOCKED') {
      // The first park of a run that continues a parked admission is the same park, not a new one.
      if (this.continuingPark) this.continuingPark = false;
      else s.parkEpoch += 1;
    }
    s.resuming = false;
    s.stage = stage;
    s.waitingFor = waitingFor;
    s.transitions.push({ stage, at: now(), note });
    if (!this.lean || this.worthShowing(stage)) this.showSearchAttributes();
    // The memo is what `birthgate stuck` reads without querying each workflow: parked stages only.
    if (stage === 'BLOCKED' || stage === 'COMPENSATION_FAILED') {
      upsertMemo({ stage, waitingFor, since: now(), blockers: s.blockers.map(describeBlocker) });
    }
    setCurrentDetails(this.details());
    // The outcome counter and a log line with code and permit id: SDK sinks, skipped on replay, no command.
    stageEntered(s, s.parkEpoch !== parkEpoch);
  }

  /** Lean: a park, a failure or an unhappy end; leaving a park; the end of a birth that showed a stage. */
  private worthShowing(stage: Stage): boolean {
    if (SHOWN_STAGES.has(stage)) return true;
    const shown = this.shown?.stage;
    if (shown === undefined) return false;
    if (this.continuingPark && stage === 'PREFLIGHT' && shown === 'BLOCKED') return false; // the same park, re-checked
    return SHOWN_STAGES.has(shown) || stage === 'FINALIZED';
  }

  /** Upsert only what changed: every upsert is a history event and a visibility write. */
  private showSearchAttributes(): void {
    const s = this.state;
    const want = { stage: s.stage, permitId: s.permit?.permitId ?? null, breakGlass: s.breakGlass !== null };
    const was = this.shown;
    const updates: SearchAttributeUpdatePair[] = [];
    if (!was) updates.push({ key: EntityCode, value: s.code }, { key: BirthCollection, value: s.collection });
    if (want.stage !== was?.stage) updates.push({ key: BirthStage, value: want.stage });
    if (want.permitId !== (was?.permitId ?? null)) updates.push({ key: PermitId, value: want.permitId });
    if (want.breakGlass !== (was?.breakGlass ?? false) || !was) updates.push({ key: BreakGlass, value: want.breakGlass });
    if (updates.length) upsertSearchAttributes(updates);
    this.shown = want;
  }
  private shown: { stage: Stage; permitId: string | null; breakGlass: boolean } | undefined;

  blocked(blockers: Blocker[]): void {
    this.state.blockers = blockers;
  }

  /** The admission's permit as the ledger last answered: REQUESTED while stuck, then RESERVED … */
  permitHeld(permit: PermitView): void {
    this.state.permit = permit;
  }

  breakGlassGranted(signal: BreakGlassSignal): void {
    this.state.breakGlass = { ...signal, breakGlassId: null, at: now() };
    breakGlassUsed(this.state);
  }

  inserted(rowId: string, breakGlassId: string | null): void {
    this.state.row = { rowId };
    if (this.state.breakGlass) this.state.breakGlass.breakGlassId = breakGlassId;
  }

  born(permit: PermitView, birthId: string, birthStatus: string | null): AdmissionResult {
    const s = this.state;
    s.permit = permit;
    s.birth = { birthId, status: birthStatus };
    const issued = s.transitions.find((t) => t.stage === 'PERMIT_ISSUED');
    s.result = {
      workflowId: s.workflowId,
      collection: s.collection,
      code: s.code,
      stage: 'FINALIZED',
      permitId: permit.permitId,
      rowId: s.row!.rowId,
      birthId,
      breakGlass: s.breakGlass !== null,
      breakGlassId: s.breakGlass?.breakGlassId ?? null,
      startedAt: s.startedAt,
      permitIssuedAt: issued?.at ?? s.startedAt,
      finalizedAt: now(),
    };
    this.enter('FINALIZED', null, `birth ${birthId} linked to permit ${permit.permitId}`);
    return s.result;
  }

  /** What the next run carries over when this one continues as new (the tails keep the last 20). */
  carry(): AdmissionCarry {
    const s = this.state;
    return {
      runs: s.runs, startedAt: s.startedAt, permit: s.permit, blockers: s.blockers, parkEpoch: s.parkEpoch,
      decisions: s.decisions.slice(-20), transitions: s.transitions.slice(-20), requestedBy: s.requestedBy.slice(0, 50),
    };
  }

  decided(d: Omit<Decision, 'at'>): void {
    this.state.decisions.push({ ...d, at: now() });
  }

  failed(type: string, message: string): void {
    this.state.error = { type, message };
  }

  /** Handlers serialize it at once, so the live object is a consistent snapshot. */
  snapshot(): AdmissionState {
    return this.state;
  }

  /** Markdown for the UI's "current details". */
  private details(): string {
    const s = this.state;
    const lines = [`**${s.stage}** · ${s.collection} · \`${s.code}\``];
    if (s.waitingFor) lines.push(`Waiting for: ${s.waitingFor}`);
    if (s.stage === 'BLOCKED') lines.push(...s.blockers.map((b) => `- ${describeBlocker(b)}`));
    if (s.permit) lines.push(`Permit ${s.permit.permitId} (${s.permit.state})${s.breakGlass ? ' · break-glass' : ''}`);
    if (s.error) lines.push(`Error: ${s.error.type}: ${s.error.message}`);
    return lines.join('\n');
  }
}

export const describeBlocker = (b: Blocker): string => `${b.kind}: ${b.detail}`;
