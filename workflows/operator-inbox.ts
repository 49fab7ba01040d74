// Operator decisions for one admission. Two doors, one inbox:
//  - the Workflow Updates (what the CLI and the client library use): a validator refuses what cannot
//    apply now — the wrong stage, a break-glass without its ledger entry or for an earlier park — and
//    the refusal goes back to the caller without touching history; an accepted decision is answered
//    once the workflow has acted on it (accepted, or refused with the reason);
//  - the signals (compatibility, the Web UI's forms): validated with the same zod schemas, recorded
//    in the state when refused.
// Either way a decision is recorded when it arrives and kept until the workflow can act on it, so one
// that arrives while a step runs is not lost.
import { condition, log, setHandler } from '@temporalio/workflow';
import type * as z from 'zod/mini';
import {
  AttachSignal,
  BreakGlassSignal,
  CancelSignal,
  type DecisionAck,
  describeIssues,
  RetrySignal,
  RollbackSignal,
  type Stage,
} from '../contracts/admission.ts';
import type { AdmissionRecord } from './admission-record.ts';
import {
  attachSignal, breakGlassSignal, breakGlassUpdate, cancelSignal, cancelUpdate, retrySignal, retryUpdate, rollbackSignal, rollbackUpdate, stateQuery,
} from './messages.ts';

export type Abort = { kind: 'cancel' | 'rollback'; actor: string; reason: string };
export type Resume = ({ kind: 'retry'; actor: string; reason: string | null } | ({ kind: 'breakGlass' } & BreakGlassSignal)) & { seq: number };

const ENDED: readonly Stage[] = ['FINALIZED', 'CANCELLED', 'ROLLED_BACK', 'FAILED'];

export class OperatorInbox {
  /** First cancel or rollback wins; the workflow acts on it at the next step boundary or wait. */
  abort: Abort | null = null;
  /** Every valid cancel counts, so a cancel can also end a COMPENSATION_FAILED park after an abort. */
  cancels = 0;
  private readonly resumes: Resume[] = [];
  private seq = 0;
  /** How each queued decision was settled, by its seq (what an update waits for). */
  private readonly settled = new Map<number, DecisionAck>();

  constructor(private readonly record: AdmissionRecord) {
    setHandler(stateQuery, () => record.snapshot(), { description: 'The full state: stage, what it waits for, blockers, permit, row, birth, decisions.' });
    setHandler(attachSignal, (raw) => {
      const parsed = AttachSignal.safeParse(raw);
      const who = parsed.success ? parsed.data.requestedBy : '(invalid attach)';
      if (!record.state.requestedBy.includes(who) && record.state.requestedBy.length < 50) record.state.requestedBy.push(who);
    }, { description: 'Sent with every admit (signal-with-start): who asked for this admission.' });
    setHandler(retrySignal, (raw) =>
      this.accept('retry', RetrySignal, raw, (s) => this.queue({ kind: 'retry', actor: s.actor, reason: s.reason ?? null })),
    { description: 'Re-run preflight on a stuck birth, or retry a failed compensation. Prefer the retryAdmission update: it answers.' });
    setHandler(breakGlassSignal, (raw) =>
      this.accept('breakGlass', BreakGlassSignal, raw, (s) => this.queue({ kind: 'breakGlass', ...s })),
    { description: 'Break-glass needs the ledger entry an operator opened (birthgate break-glass); without breakGlassId it is refused.' });
    setHandler(cancelSignal, (raw) => this.accept('cancel', CancelSignal, raw, (s) => this.setAbort({ kind: 'cancel', ...s })),
      { description: 'Abandon the admission: compensations run, the permit ends CANCELLED.' });
    setHandler(rollbackSignal, (raw) => this.accept('rollback', RollbackSignal, raw, (s) => this.setAbort({ kind: 'rollback', ...s })),
      { description: 'Undo the admission while it runs: compensations in reverse.' });

    setHandler(retryUpdate, async (raw) => this.awaitSettled(this.queue({ kind: 'retry', actor: raw.actor, reason: raw.reason ?? null })), {
      validator: (raw) => {
        this.parse(RetrySignal, raw, 'retry');
        this.require(['BLOCKED', 'COMPENSATION_FAILED'], 'retry', 'only a parked admission (BLOCKED or COMPENSATION_FAILED) is retried');
      },
      description: 'Re-run preflight on a stuck birth (BLOCKED), or the failed compensations (COMPENSATION_FAILED). {actor, reason?}',
    });
    setHandler(breakGlassUpdate, async (raw) => this.awaitSettled(this.queue({ kind: 'breakGlass', ...raw })), {
      validator: (raw) => {
        const p = this.parse(BreakGlassSignal, raw, 'break-glass');
        this.require(['BLOCKED'], 'break-glass', 'break-glass applies only to a stuck birth (BLOCKED)');
        if (!p.breakGlassId) throw new Error('break-glass refused: it needs its ledger entry (breakGlassId), opened by an operator with `birthgate break-glass`');
        if (p.parkEpoch !== undefined && p.parkEpoch !== record.state.parkEpoch) {
          throw new Error(`break-glass refused: it answers park ${p.parkEpoch}, the admission is now in park ${record.state.parkEpoch} — look again`);
        }
        if (this.abort) throw new Error(`break-glass refused: the admission is already ${this.abort.kind === 'cancel' ? 'cancelling' : 'rolling back'}`);
      },
      description: 'Admit a stuck birth past its overridable stop-conditions. {actor, reason, approvalId, breakGlassId, parkEpoch?}: the ledger entry comes first (birthgate break-glass).',
    });
    setHandler(cancelUpdate, (raw) => this.ack(this.setAbort({ kind: 'cancel', ...raw })), {
      validator: (raw) => {
        this.parse(CancelSignal, raw, 'cancel');
        this.requireRunning('cancel');
        if (this.abort && record.stage !== 'COMPENSATION_FAILED') throw new Error(`cancel refused: already ${this.abort.kind === 'cancel' ? 'cancelling' : 'rolling back'}`);
      },
      description: 'Abandon the admission: compensations run, the permit ends CANCELLED. {actor, reason}',
    });
    setHandler(rollbackUpdate, (raw) => this.ack(this.setAbort({ kind: 'rollback', ...raw })), {
      validator: (raw) => {
        this.parse(RollbackSignal, raw, 'rollback');
        this.requireRunning('rollback');
        if (record.stage === 'COMPENSATION_FAILED') throw new Error('rollback refused: a compensation failed — retry it (birthgate retry) or abandon it (birthgate cancel)');
        if (this.abort) throw new Error(`rollback refused: already ${this.abort.kind === 'cancel' ? 'cancelling' : 'rolling back'}`);
      },
      description: 'Undo the admission while it runs: compensations in reverse. {actor, reason}',
    });
  }

  private parse<S extends z.ZodMiniType>(schema: S, raw: unknown, what: string): z.output<S> {
    const parsed = schema.safeParse(raw);
    if (!parsed.success) throw new Error(`invalid ${what}: ${describeIssues(parsed.error)}`);
    return parsed.data;
  }

  private require(stages: readonly Stage[], what: string, why: string): void {
    if (!stages.includes(this.record.stage)) throw new Error(`${what} refused: the admission is ${this.record.stage}; ${why}`);
  }

  private requireRunning(what: string): void {
    if (ENDED.includes(this.record.stage)) throw new Error(`${what} refused: the admission already ended ${this.record.stage}`);
  }

  private queue(r: Omit<Resume, 'seq'>): number {
    const seq = ++this.seq;
    this.resumes.push({ ...r, seq } as Resume);
    return seq;
  }

  private async awaitSettled(seq: number): Promise<DecisionAck> {
    await condition(() => this.settled.has(seq));
    return this.settled.get(seq)!;
  }

  private ack(note: string): DecisionAck {
    return { accepted: true, stage: this.record.stage, note };
  }

  /** Wait until an operator resumes or aborts, or `also()` turns true. Never a busy loop. */
  async until(also: () => boolean = () => false): Promise<void> {
    await condition(() => this.abort !== null || this.resumes.length > 0 || also());
  }

  /** Wait for a retry / break-glass, or for a cancel newer than `cancelsSeen`. */
  async untilResumeOrCancel(cancelsSeen: number): Promise<void> {
    await condition(() => this.resumes.length > 0 || this.cancels > cancelsSeen);
  }

  /** Decisions queued and not yet acted on. */
  pending(): boolean {
    return this.resumes.length > 0;
  }

  nextResume(): Resume | undefined {
    return this.resumes.shift();
  }

  /** Record how a queued decision was used (or why it was refused) once the workflow acted on it. */
  settle(d: Resume, accepted: boolean, note: string): void {
    this.record.decided({ kind: d.kind, actor: d.actor, reason: d.reason, accepted, note });
    if (accepted) this.record.state.resuming = true;
    this.settled.set(d.seq, { accepted, stage: this.record.stage, note });
  }

  /** Decisions still queued when the admission ends: refused, so no update waits forever. */
  settleRemaining(why: string): void {
    for (let d = this.resumes.shift(); d; d = this.resumes.shift()) this.settle(d, false, why);
  }

  private setAbort(a: Abort): string {
    if (a.kind === 'cancel') this.cancels += 1;
    if (a.kind === 'cancel' && this.record.stage === 'COMPENSATION_FAILED') {
      const note = 'abandon the remaining compensations (repaired by hand)';
      this.record.decided({ ...a, accepted: true, note });
      this.abort ??= a;
      return note;
    }
    if (this.abort) {
      const note = `already ${this.abort.kind === 'cancel' ? 'cancelling' : 'rolling back'}`;
      this.record.decided({ ...a, accepted: false, note });
      return note;
    }
    this.abort = a;
    const note = `${a.kind} requested at stage ${this.record.stage}`;
    this.record.decided({ ...a, accepted: true, note });
    return note;
  }

  private accept<S extends z.ZodMiniType>(kind: Resume['kind'] | Abort['kind'], schema: S, raw: unknown, use: (s: z.output<S>) => void): void {
    const parsed = schema.safeParse(raw);
    if (parsed.success) {
      use(parsed.data);
      return;
    }
    // A signal cannot be refused to its sender; record it as rejected so `status` shows why.
    const actor = typeof (raw as { actor?: unknown })?.actor === 'string' ? (raw as { actor: string }).actor : '(unknown)';
    log.warn('operator message rejected', { kind, reason: describeIssues(parsed.error) });
    this.record.decided({ kind, actor, reason: null, accepted: false, note: `invalid ${kind}: ${describeIssues(parsed.error)}` });
  }
}
