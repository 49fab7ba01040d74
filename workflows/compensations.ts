// The undo stack (samples-typescript saga shape, minus its habit of swallowing errors): each step
// registers its compensation before it runs, compensations run in reverse inside a non-cancellable
// scope, and one that fails parks the admission as COMPENSATION_FAILED until an operator retries it
// (or, having repaired by hand, cancels the rest). Nothing is ever skipped silently.
import { ApplicationFailure, CancellationScope } from '@temporalio/workflow';
import { FailureType } from '../contracts/admission.ts';
import type { AdmissionRecord } from './admission-record.ts';
import type { OperatorInbox } from './operator-inbox.ts';

/** Who undoes, and why; a withdrawn permit ends CANCELLED (operator, cancellation) or FAILED (a step failed). */
export type UndoContext = { permitTo: 'CANCELLED' | 'FAILED'; actor: string; reason: string };
type Compensation = { name: string; run: (ctx: UndoContext) => Promise<unknown> };

export class Compensations {
  private readonly stack: Compensation[] = [];

  constructor(
    private readonly record: AdmissionRecord,
    private readonly inbox: OperatorInbox,
  ) {}

  get size(): number {
    return this.stack.length;
  }

  add(name: string, run: (ctx: UndoContext) => Promise<unknown>): void {
    this.stack.push({ name, run });
    this.record.state.compensations.pending = this.stack.map((c) => c.name).reverse();
  }

  /** Run every registered compensation, last first. Resolves only when all are done. */
  runAll(ctx: UndoContext): Promise<void> {
    return CancellationScope.nonCancellable(async () => {
      const { compensations } = this.record.state;
      for (let c = this.stack.pop(); c; c = this.stack.pop()) {
        this.record.enter('COMPENSATING', `${c.name} (${ctx.reason})`);
        await this.runUntilDone(c, ctx);
        compensations.done.push(c.name);
        compensations.pending = this.stack.map((s) => s.name).reverse();
      }
    });
  }

  private async runUntilDone(c: Compensation, ctx: UndoContext): Promise<void> {
    for (;;) {
      try {
        await c.run(ctx);
        return;
      } catch (err) {
        const message = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
        this.record.failed(FailureType.ADMISSION_FAILED, `compensation "${c.name}" failed: ${message}`);
        this.record.enter('COMPENSATION_FAILED', `an operator: retry to run "${c.name}" again, or cancel once it is repaired by hand`);
        await this.awaitOperator(c);
      }
    }
  }

  /** Only retry and cancel mean something here; other decisions are recorded as refused. */
  private async awaitOperator(c: Compensation): Promise<void> {
    const cancelsSeen = this.inbox.cancels;
    for (;;) {
      await this.inbox.untilResumeOrCancel(cancelsSeen);
      const decision = this.inbox.nextResume();
      if (decision?.kind === 'retry') {
        this.inbox.settle(decision, true, `retry compensation "${c.name}"`);
        return;
      }
      if (decision) {
        this.inbox.settle(decision, false, 'break-glass is meaningless while compensating');
        continue;
      }
      // cancel while parked: the operator repaired by hand; stop here and say what is left.
      const left = [c.name, ...this.stack.map((s) => s.name).reverse()];
      throw ApplicationFailure.create({
        type: FailureType.ADMISSION_FAILED,
        message: `compensations abandoned by an operator cancel: ${left.join(', ')} not run`,
        nonRetryable: true,
      });
    }
  }
}
