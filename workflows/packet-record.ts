// What a packet workflow (applyPacket, packetRollback) knows about itself and how it shows it: the
// queryable state, the `PacketStep` search attribute and the current details the Web UI shows; the
// owner's approval and the operator's decisions (Workflow Updates with validators: a refused one gets
// its reason back and never reaches history); the activities with their timeouts. Deterministic.
import { ActivityFailure, ApplicationFailure, condition, proxyActivities, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { z } from 'zod';
import type { PacketActivities } from '../activities/packet.ts';
import {
  describeIssues, type Estate, type PacketAck, PacketApproval, PacketDecision, PacketFailure, type PacketErrorView, type PacketFailureDetails,
  type PacketStage, type PacketState, packetStepAttribute, type StepView,
} from '../contracts/packet.ts';
import { PacketStep } from '../contracts/search-attributes.ts';
import { approvePacketUpdate, decidePacketUpdate, packetStateQuery } from './packet-messages.ts';

const now = () => new Date().toISOString(); // deterministic inside the workflow sandbox
const short = (h: string | null) => (h ? `${h.slice(0, 12)}…` : '—');

/**
 * Timeouts. A step may build an index CONCURRENTLY on 1.12M rows (minutes), so start-to-close is
 * long; a dead worker is noticed by its heartbeats instead (every second, timeout 10 s), and the attempt
 * is retried on the next packet worker that polls — `birthgate apply` hosts one. Retries: only what
 * the activity marks retryable (a busy lock, a lost connection); every decision of the packet is final.
 * No schedule-to-close: a packet waits for its worker rather than rolling back because none polled.
 */
export function packetActivities() {
  return proxyActivities<PacketActivities>({
    startToCloseTimeout: '30m',
    heartbeatTimeout: '10s',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
  });
}

/** The packet failure behind an activity's failure (activities/packet.ts puts its view in the details). */
export function packetErrorOf(err: unknown, step: number | null): PacketErrorView {
  const app = err instanceof ActivityFailure ? err.cause : err;
  if (app instanceof ApplicationFailure) {
    const d = (app.details?.[0] ?? {}) as Partial<PacketErrorView>;
    const code = (Object.values(PacketFailure) as string[]).includes(app.type ?? '') ? (app.type as PacketFailure) : PacketFailure.StepFailed;
    return { code, message: d.message ?? app.message, step: d.step ?? step, sqlstate: d.sqlstate ?? null, runId: d.runId ?? null };
  }
  const message = err instanceof Error ? (err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message) : String(err);
  return { code: PacketFailure.StepFailed, message, step, sqlstate: null, runId: null };
}

/** How a packet workflow fails: the packet's code as the type, its structured view as the details. */
export function packetFailure(e: PacketFailureDetails): ApplicationFailure {
  return ApplicationFailure.create({ type: e.code, message: e.message, nonRetryable: true, details: [e] });
}

type Queued<T> = { seq: number; value: T };

export class PacketRecord {
  readonly state: PacketState;
  private shown: string | undefined;
  private seq = 0;
  private readonly settled = new Map<number, PacketAck>();
  private readonly approvals: Queued<PacketApproval>[] = [];
  private readonly decisions: Queued<PacketDecision>[] = [];

  constructor(kind: 'apply' | 'rollback', workflowId: string, estate: Estate, requestedBy: string, target: number | null) {
    this.state = {
      workflowId, kind, estate, stage: 'STARTING', step: null, target, door: null, waitingFor: null, ledgerRunId: null,
      entryHash: null, entryGovernedHash: null, doorGovernedHash: null, backupDir: null, appliedAtEntry: null,
      steps: [], rolledBack: [], approval: null, decisions: [], error: null, proof: null, requestedBy, startedAt: now(),
    };
    setHandler(packetStateQuery, () => this.state, { description: 'The packet: stage, step, what it waits for, steps done, entry and door hashes.' });
    setHandler(approvePacketUpdate, async (a) => this.awaitSettled(this.queue(this.approvals, a)), {
      validator: (raw) => {
        const a = this.parse(PacketApproval, raw, 'approval');
        if (this.state.stage !== 'WAITING_FOR_OWNER') {
          throw new Error(`approval refused: the packet is ${this.state.stage}${this.state.step ? ` at step ${this.state.step}` : ''}; only a packet waiting at the one-way door is approved`);
        }
        if (this.approvals.length) throw new Error('approval refused: another approval is being checked');
        if (a.expectGovernedHash !== undefined && a.expectGovernedHash !== this.state.doorGovernedHash) {
          throw new Error(`approval refused: it approves governed hash ${a.expectGovernedHash}, the packet waits at the door with ${this.state.doorGovernedHash}`);
        }
      },
      description: 'The owner approves the one-way door (KB-7D57 step 7). {owner, approvalId, expectGovernedHash?}',
    });
    setHandler(decidePacketUpdate, async (d) => this.awaitSettled(this.queue(this.decisions, d)), {
      validator: (raw) => {
        const d = this.parse(PacketDecision, raw, 'decision');
        const ok: PacketStage[] = d.action === 'retry' ? ['PARKED'] : ['PARKED', 'WAITING_FOR_OWNER'];
        if (!ok.includes(this.state.stage)) {
          throw new Error(`${d.action} refused: the packet is ${this.state.stage}; ${d.action === 'retry' ? 'only a parked packet is retried' : 'only a packet waiting for a human (at the door or parked) is stopped'}`);
        }
        if (this.decisions.length || this.approvals.length) throw new Error(`${d.action} refused: another decision is being acted on`);
      },
      description: "An operator's answer to a parked packet: {action: 'retry' | 'stop', actor, reason?}; 'stop' also withdraws a packet waiting at the door.",
    });
  }

  private parse<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
    const r = schema.safeParse(raw);
    if (!r.success) throw new Error(`invalid ${what}: ${describeIssues(r.error)}`);
    return r.data;
  }

  private queue<T>(q: Queued<T>[], value: T): number {
    const seq = ++this.seq;
    q.push({ seq, value });
    return seq;
  }

  private async awaitSettled(seq: number): Promise<PacketAck> {
    await condition(() => this.settled.has(seq));
    return this.settled.get(seq)!;
  }

  private settle(seq: number, kind: 'approve' | 'retry' | 'stop', actor: string, accepted: boolean, note: string): void {
    this.state.decisions.push({ kind, actor, accepted, note, at: now() });
    this.settled.set(seq, { accepted, stage: this.state.stage, note });
  }

  /**
   * Wait for the owner's approval (or an operator's stop); `check` says why the door is no longer as
   * the owner saw it (an activity: the catalog now). An approval stays queued while it is checked, so
   * the validators refuse a second one meanwhile instead of queueing it behind the first.
   */
  async awaitApproval(check: (a: PacketApproval) => Promise<string | undefined>): Promise<PacketApproval | { stop: PacketDecision }> {
    for (;;) {
      await condition(() => this.approvals.length > 0 || this.decisions.length > 0);
      const d = this.decisions.shift();
      if (d) {
        this.settle(d.seq, 'stop', d.value.actor, true, `stopped at the door by ${d.value.actor}${d.value.reason ? `: ${d.value.reason}` : ''}`);
        return { stop: d.value };
      }
      const a = this.approvals[0]!;
      const refusal = await check(a.value);
      this.approvals.shift();
      if (refusal) {
        this.settle(a.seq, 'approve', a.value.owner, false, refusal);
        this.show();
        continue;
      }
      this.state.approval = { owner: a.value.owner, approvalId: a.value.approvalId, at: now() };
      this.settle(a.seq, 'approve', a.value.owner, true, `approved by ${a.value.owner} (${a.value.approvalId}): step ${this.state.step} runs`);
      return a.value;
    }
  }

  /** Wait for an operator's retry or stop of a parked packet. */
  async awaitDecision(): Promise<PacketDecision> {
    await condition(() => this.decisions.length > 0);
    const d = this.decisions.shift()!;
    this.settle(d.seq, d.value.action, d.value.actor, true, `${d.value.action} by ${d.value.actor}${d.value.reason ? `: ${d.value.reason}` : ''} at step ${this.state.step}`);
    return d.value;
  }

  /** Approvals or decisions still queued when the packet ends: refused, so no update waits forever. */
  settleRemaining(why: string): void {
    for (let a = this.approvals.shift(); a; a = this.approvals.shift()) this.settle(a.seq, 'approve', a.value.owner, false, why);
    for (let d = this.decisions.shift(); d; d = this.decisions.shift()) this.settle(d.seq, d.value.action, d.value.actor, false, why);
  }

  enter(stage: PacketStage, step: number | null, waitingFor: string | null = null): void {
    Object.assign(this.state, { stage, step, waitingFor });
    this.show();
  }

  stepDone(v: StepView): void {
    this.state.steps.push(v);
  }

  rolledBack(v: StepView): void {
    this.state.rolledBack.push(v);
  }

  failed(e: PacketErrorView): void {
    this.state.error = e;
  }

  /** Upsert PacketStep only when it changed (each upsert is a history event), and the current details. */
  show(): void {
    const value = packetStepAttribute(this.state.stage, this.state.step);
    if (value !== this.shown) {
      upsertSearchAttributes([{ key: PacketStep, value }]);
      this.shown = value;
    }
    setCurrentDetails(this.details());
  }

  /** Markdown for the UI's "current details". */
  private details(): string {
    const s = this.state;
    const lines = [`**${s.stage}**${s.step ? ` · step ${s.step}` : ''} · ${s.kind} · \`${s.estate.database}\` (system ${s.estate.systemIdentifier})`];
    if (s.waitingFor) lines.push(`Waiting for: ${s.waitingFor}`);
    if (s.stage === 'WAITING_FOR_OWNER') lines.push(`Door governed hash: \`${s.doorGovernedHash}\``);
    if (s.steps.length) lines.push(`Done: ${s.steps.map((v) => `${v.step} ${v.action}`).join(', ')}`);
    if (s.rolledBack.length) lines.push(`Rolled back: ${s.rolledBack.map((v) => `${v.step} ${v.action}`).join(', ')}`);
    if (s.approval) lines.push(`Approved by ${s.approval.owner} (${s.approval.approvalId})`);
    if (s.error) lines.push(`Error: ${s.error.code}${s.error.step ? ` at step ${s.error.step}` : ''}: ${s.error.message}`);
    lines.push(`Entry ${short(s.entryHash)} · ledger run ${s.ledgerRunId ?? '—'}`);
    const last = s.decisions.at(-1);
    if (last && !last.accepted) lines.push(`Last ${last.kind} refused: ${last.note}`);
    return lines.join('\n');
  }
}
