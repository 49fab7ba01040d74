// Operator decisions for one admission: every message is validated with its zod schema, recorded in
// the state (accepted or not, with why), and kept until the workflow is at a point that can act on
// it. A decision that arrives before the workflow parks is therefore not lost.
import { condition, log, setHandler } from '@temporalio/workflow';
import type { z } from 'zod';
import {
  AttachSignal,
  BreakGlassSignal,
  CancelSignal,
  describeIssues,
  RetrySignal,
  RollbackSignal,
} from '../contracts/admission.ts';
import type { AdmissionRecord } from './admission-record.ts';
import { attachSignal, breakGlassSignal, cancelSignal, retrySignal, rollbackSignal, stateQuery } from './messages.ts';

export type Abort = { kind: 'cancel' | 'rollback'; actor: string; reason: string };
export type Resume = { kind: 'retry'; actor: string; reason: string | null } | ({ kind: 'breakGlass' } & BreakGlassSignal);

export class OperatorInbox {
  /** First cancel or rollback wins; the workflow acts on it at the next step boundary or wait. */
  abort: Abort | null = null;
  /** Every valid cancel counts, so a cancel can also end a COMPENSATION_FAILED park after an abort. */
  cancels = 0;
  private readonly resumes: Resume[] = [];

  constructor(private readonly record: AdmissionRecord) {
    setHandler(stateQuery, () => record.snapshot());
    setHandler(attachSignal, (raw) => {
      const parsed = AttachSignal.safeParse(raw);
      const who = parsed.success ? parsed.data.requestedBy : '(invalid attach)';
      if (!record.state.requestedBy.includes(who) && record.state.requestedBy.length < 50) record.state.requestedBy.push(who);
    });
    setHandler(retrySignal, (raw) =>
      this.accept('retry', RetrySignal, raw, (s) => this.resumes.push({ kind: 'retry', actor: s.actor, reason: s.reason ?? null })),
    );
    setHandler(breakGlassSignal, (raw) =>
      this.accept('breakGlass', BreakGlassSignal, raw, (s) => this.resumes.push({ kind: 'breakGlass', ...s })),
    );
    setHandler(cancelSignal, (raw) => this.accept('cancel', CancelSignal, raw, (s) => this.setAbort({ kind: 'cancel', ...s })));
    setHandler(rollbackSignal, (raw) => this.accept('rollback', RollbackSignal, raw, (s) => this.setAbort({ kind: 'rollback', ...s })));
  }

  /** Wait until an operator resumes or aborts, or `also()` turns true. Never a busy loop. */
  async until(also: () => boolean = () => false): Promise<void> {
    await condition(() => this.abort !== null || this.resumes.length > 0 || also());
  }

  /** Wait for a retry / break-glass, or for a cancel newer than `cancelsSeen`. */
  async untilResumeOrCancel(cancelsSeen: number): Promise<void> {
    await condition(() => this.resumes.length > 0 || this.cancels > cancelsSeen);
  }

  nextResume(): Resume | undefined {
    return this.resumes.shift();
  }

  /** Record how a queued decision was used (or why it was refused) once the workflow acted on it. */
  settle(d: Resume, accepted: boolean, note: string): void {
    this.record.decided({ kind: d.kind, actor: d.actor, reason: d.reason, accepted, note });
  }

  private setAbort(a: Abort): void {
    if (a.kind === 'cancel') this.cancels += 1;
    if (a.kind === 'cancel' && this.record.stage === 'COMPENSATION_FAILED') {
      this.record.decided({ ...a, accepted: true, note: 'abandon the remaining compensations (repaired by hand)' });
      this.abort ??= a;
      return;
    }
    if (this.abort) {
      this.record.decided({ ...a, accepted: false, note: `already ${this.abort.kind === 'cancel' ? 'cancelling' : 'rolling back'}` });
      return;
    }
    this.abort = a;
    this.record.decided({ ...a, accepted: true, note: `${a.kind} requested at stage ${this.record.stage}` });
  }

  private accept<S extends z.ZodType>(kind: Resume['kind'] | Abort['kind'], schema: S, raw: unknown, use: (s: z.output<S>) => void): void {
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
