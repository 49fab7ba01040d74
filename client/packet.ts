// The typed client of the packet workflows (issue 9 item 1): start or attach to `applyPacket`, the
// owner's approval, an operator's retry or stop, `packetRollback`, and the wait the CLI does between
// them. Every payload is validated with contracts/packet.ts before anything reaches Temporal. The
// estate's identity (system identifier, database) is read with the admin connection before the start,
// because the workflow id and the task queue are derived from it.
import { type Client, WorkflowFailedError, type WorkflowHandle, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';
import {
  ApplyPacketInput, type ApplyPacketResult, describeIssues, type Estate, type PacketAck, PacketApproval, PacketDecision, PacketFailure,
  type PacketFailureDetails, PacketRollbackInput, type PacketRollbackResult, type PacketState, packetRollbackWorkflowId, packetStepAttribute,
  packetTaskQueue, packetWorkflowId, WAITING_STAGES,
} from '../contracts/packet.ts';
import { PacketStep } from '../contracts/search-attributes.ts';
import { approvePacketUpdate, decidePacketUpdate, packetStateQuery } from '../workflows/packet-messages.ts';

export { readEstate } from '../activities/packet.ts';

/** Refused input, or an attach to a packet running with other arguments: nothing was sent (exit 2). */
export class PacketInputError extends Error {
  override name = 'PacketInputError';
}

/** The packet refused an approval or decision (its validator, or once it checked it): the reason says why (exit 3). */
export class PacketDecisionRefusedError extends Error {
  override name = 'PacketDecisionRefusedError';
}

function valid<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new PacketInputError(`${what}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

export type PacketRun = { workflowId: string; attached: boolean; handle: WorkflowHandle };

/** Whether the execution this call got was already running before it (USE_EXISTING attached to it). */
async function attachedTo(handle: WorkflowHandle, calledAt: number): Promise<boolean> {
  return (await handle.describe()).startTime.getTime() < calledAt - 1_000;
}

/**
 * Start the packet of `estate`, or attach to the one running (USE_EXISTING): one packet workflow per
 * estate database. A finished one is not attached to: ALLOW_DUPLICATE starts a new run, whose steps
 * all verify and are skipped (a no-op) — or which continues where an earlier run stopped.
 */
export async function startApply(client: Client, raw: ApplyPacketInput): Promise<PacketRun> {
  const input = valid(ApplyPacketInput, raw, 'apply');
  const workflowId = packetWorkflowId(input.estate);
  const calledAt = Date.now();
  const handle = await client.workflow.start('applyPacket', {
    workflowId,
    taskQueue: packetTaskQueue(input.estate),
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    typedSearchAttributes: [{ key: PacketStep, value: packetStepAttribute('STARTING', null) }],
    staticSummary: `KB-7D57 apply packet on ${input.estate.database}`,
    staticDetails: `applyPacket through step ${input.through ?? 'the last'}; requested by ${input.requestedBy}. The owner's approval opens the one-way door (birthgate approve).`,
  });
  const attached = await attachedTo(handle, calledAt);
  if (attached && input.through !== undefined) {
    const state = await queryState(client, handle);
    if (state?.target != null && state.target !== input.through) {
      throw new PacketInputError(`the packet workflow ${workflowId} is already running through step ${state.target}: not attached with --through ${input.through}; wait for it, or stop it (birthgate packet stop)`);
    }
  }
  return { workflowId, attached, handle };
}

/** `rollback --to N` as its own workflow; a second call with the same N attaches, another N is refused. */
export async function startRollback(client: Client, raw: PacketRollbackInput): Promise<PacketRun> {
  const input = valid(PacketRollbackInput, raw, 'rollback');
  const workflowId = packetRollbackWorkflowId(input.estate);
  const calledAt = Date.now();
  const handle = await client.workflow.start('packetRollback', {
    workflowId,
    taskQueue: packetTaskQueue(input.estate),
    args: [input],
    workflowIdConflictPolicy: 'USE_EXISTING',
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    typedSearchAttributes: [{ key: PacketStep, value: packetStepAttribute('STARTING', null) }],
    staticSummary: `KB-7D57 packet rollback to step ${input.to} on ${input.estate.database}`,
  });
  const attached = await attachedTo(handle, calledAt);
  if (attached) {
    const state = await queryState(client, handle);
    if (state && state.target !== input.to) throw new PacketInputError(`a packet rollback to step ${state.target} is already running (${workflowId}): not attached with --to ${input.to}`);
  }
  return { workflowId, attached, handle };
}

async function queryState(client: Client, handle: WorkflowHandle, timeoutMs = 5_000): Promise<PacketState | null> {
  return client.withDeadline(Date.now() + timeoutMs, () => handle.query(packetStateQuery)).catch(() => null);
}

export type PacketStatus = { workflowId: string; status: string; state: PacketState | null } | undefined;

/** The apply workflow of `estate` as it stands (undefined when there never was one). */
export async function packetStatus(client: Client, estate: Estate, opts: { rollback?: boolean } = {}): Promise<PacketStatus> {
  const handle = client.workflow.getHandle(opts.rollback ? packetRollbackWorkflowId(estate) : packetWorkflowId(estate));
  try {
    const d = await handle.describe();
    return { workflowId: d.workflowId, status: d.status.name, state: d.status.name === 'RUNNING' ? await queryState(client, handle) : null };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

export type PacketOutcome<R> =
  | { kind: 'done'; result: R }
  | { kind: 'failed'; failure: PacketFailureDetails }
  /** It waits for a human: the owner at the door (WAITING_FOR_OWNER) or an operator (PARKED). */
  | { kind: 'waiting'; state: PacketState };

/** A packet workflow's failure as the packet's view (type = the packet's code, details = its view). */
export function packetFailureOf(err: unknown): PacketFailureDetails {
  const cause = err instanceof WorkflowFailedError ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const d = (cause.details?.[0] ?? {}) as Partial<PacketFailureDetails>;
    const code = (Object.values(PacketFailure) as string[]).includes(cause.type ?? '') ? (cause.type as PacketFailure) : PacketFailure.StepFailed;
    return { code, message: d.message ?? cause.message, step: d.step ?? null, sqlstate: d.sqlstate ?? null, runId: d.runId ?? null, proof: d.proof ?? null, rolledBack: d.rolledBack ?? [] };
  }
  return { code: PacketFailure.StepFailed, message: (err as Error).message, step: null, sqlstate: null, runId: null };
}

/**
 * Wait until the packet workflow ends or waits for a human, reporting its state as it moves
 * (`onState`, every ~300 ms; the caller hosts the packet worker meanwhile).
 */
export async function waitForPacket<R>(
  client: Client, handle: WorkflowHandle, opts: { onState?: (s: PacketState) => void; pollMs?: number } = {},
): Promise<PacketOutcome<R>> {
  for (;;) {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') {
      try {
        return { kind: 'done', result: (await handle.result()) as R };
      } catch (err) {
        return { kind: 'failed', failure: packetFailureOf(err) };
      }
    }
    const state = await queryState(client, handle);
    if (state) {
      opts.onState?.(state);
      if (WAITING_STAGES.includes(state.stage)) return { kind: 'waiting', state };
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 300));
  }
}

async function update<A>(client: Client, estate: Estate, def: typeof approvePacketUpdate | typeof decidePacketUpdate, payload: A): Promise<PacketAck> {
  const handle = client.workflow.getHandle(packetWorkflowId(estate));
  try {
    const d = await handle.describe();
    if (d.status.name !== 'RUNNING') throw new PacketInputError(`the packet workflow ${handle.workflowId} is not running (${d.status.name}): start it with \`birthgate apply\``);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new PacketInputError(`no packet workflow for ${estate.database}: start it with \`birthgate apply\``);
    throw err;
  }
  let ack: PacketAck;
  try {
    ack = await handle.executeUpdate(def as never, { args: [payload] as never });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) throw new PacketDecisionRefusedError((err.cause as Error | undefined)?.message ?? err.message);
    throw err;
  }
  if (!ack.accepted) throw new PacketDecisionRefusedError(ack.note);
  return ack;
}

/** `birthgate approve`: the owner's approval of the one-way door, as a Workflow Update (refused → PacketDecisionRefusedError). */
export async function approvePacket(client: Client, estate: Estate, raw: z.input<typeof PacketApproval>): Promise<PacketAck> {
  return update(client, estate, approvePacketUpdate, valid(PacketApproval, raw, 'approval'));
}

/** `birthgate packet retry | stop`: an operator's answer to a parked packet (stop also withdraws one at the door). */
export async function decidePacket(client: Client, estate: Estate, raw: z.input<typeof PacketDecision>): Promise<PacketAck> {
  return update(client, estate, decidePacketUpdate, valid(PacketDecision, raw, 'decision'));
}

export type { ApplyPacketResult, PacketRollbackResult, PacketState };
