// birthgate apply | approve | rollback --to N | packet retry | packet stop | rehearse — the KB-7D57
// apply packet, its rollbacks and the KB-3A66 rehearsal, against the stack's database as the superuser
// (ctx.endpoints().databaseUrl).
//
// The packet runs as Temporal workflows (issue 9 item 1): `apply` starts or attaches to the estate
// database's applyPacket workflow, `approve` is the owner's Workflow Update at the one-way door,
// `packet retry | stop` answer a parked packet, `rollback --to N` runs packetRollback. Each of them
// hosts a packet worker in-process with the admin pool while it waits (the long-running admission
// worker never holds that connection), prints the packet's progress, and returns when the workflow is
// done or waits for a human (exit 3). The rehearsal stays a direct call (rehearsal/).
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { z } from 'zod';
import {
  approvePacket, decidePacket, PacketDecisionRefusedError, PacketInputError, type PacketOutcome, packetStatus, readEstate, startApply, startRollback, waitForPacket,
} from '../../client/packet.ts';
import type { ApplyPacketResult, Estate, PacketFailureDetails, PacketRollbackResult, PacketState } from '../../contracts/packet.ts';
import { createPool } from '../../db/pool.ts';
import { PacketError, PacketFailure } from '../../packet/errors.ts';
import { ExpectedMd5Schema, KB_2590_ENTRY_MD5 } from '../../packet/live-bodies.ts';
import { rehearse } from '../../rehearsal/rehearse.ts';
import { renderMarkdown } from '../../rehearsal/report.ts';
import { ensureSearchAttributes } from '../../stack/temporal.ts';
import { hostPacketWorker, PACKET_POOL_SIZE, packetBundle } from '../../workers/packet-worker.ts';
import { UsageError, type CliContext, type Command } from '../command.ts';

type Spec = Record<string, { type: 'boolean' | 'string' }>;

function parse<T extends z.ZodTypeAny>(argv: string[], spec: Spec, schema: T): z.output<T> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options: spec, allowPositionals: false, strict: true }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const r = schema.safeParse(values);
  if (!r.success) throw new UsageError(r.error.issues.map((i) => `${i.path.length ? `--${i.path.join('.')}` : 'arguments'}: ${i.message}`).join('; '));
  return r.data;
}

const step = (name: string) => z.coerce.number({ error: `${name} must be a step number` }).int(`${name} must be a step number`).min(0).max(99);
const text = z.string().trim().min(1).max(200);

const ApplyArgs = z
  .object({
    through: step('--through').min(1).optional(),
    owner: text.optional(),
    approval: text.optional(),
    expect: z.string().regex(/^[0-9a-f]{64}$/, 'the governed hash from a rehearsal report (64 hex digits)').optional(),
    // Steps 4/5 refuse a live birth function other than the owner expects: `kb-2590` (production's
    // entry md5s, KB-2590 §4) or `fn=md5,fn=md5` (md5 of pg_get_functiondef).
    'expect-live-md5': z.string().min(1).max(400).transform((v, ctx) => {
      if (v === 'kb-2590') return KB_2590_ENTRY_MD5;
      const r = ExpectedMd5Schema.safeParse(Object.fromEntries(v.split(',').map((pair) => pair.split('=', 2) as [string, string])));
      if (!r.success) { ctx.addIssue({ code: 'custom', message: 'kb-2590, or fn=md5[,fn=md5] (32 hex digits each)' }); return z.NEVER; }
      return r.data;
    }).optional(),
    'report-dir': z.string().min(1).optional(),
    json: z.boolean().default(false),
  })
  .refine((a) => (a.owner === undefined) === (a.approval === undefined), { message: '--owner and --approval go together (KB-7D57 owner approval)', path: ['approval'] });

const RollbackArgs = z.object({ to: step('--to'), json: z.boolean().default(false) });
const RehearseArgs = z.object({ report: z.string().min(1).optional(), json: z.boolean().default(false) });
const ApproveArgs = z.object({
  owner: text,
  approval: text,
  expect: z.string().regex(/^[0-9a-f]{64}$/, 'the governed hash the packet showed at its door (64 hex digits)').optional(),
  json: z.boolean().default(false),
});
const DecideArgs = z.object({ actor: text.optional(), reason: z.string().trim().min(1).max(2000).optional(), json: z.boolean().default(false) });

const whoami = () => process.env.USER || os.userInfo().username || 'operator';

/**
 * The CLI's exit codes: 3 while the packet waits for a human (the one-way door without the owner's
 * approval), 2 for a refusal that changed nothing (a rollback whose preconditions fail, bad
 * request, a busy packet lock or lease), 1 for a failure.
 */
export function exitCodeOf(err: PacketError): number {
  if (err.code === PacketFailure.Precondition) return /needs an owner approval/.test(err.message) ? 3 : 2;
  if (err.code === PacketFailure.BadRequest || err.code === PacketFailure.Busy) return 2;
  return 1;
}

function failed(ctx: CliContext, json: boolean, err: unknown): number {
  if (!(err instanceof PacketError)) throw err;
  if (json) ctx.out(JSON.stringify({ ok: false, code: err.code, sqlstate: err.sqlstate ?? null, runId: err.runId ?? null, step: err.step ?? null, message: err.message, detail: err.detail ?? null }, null, 2));
  else ctx.err(`${err.code}: ${err.message}`);
  return exitCodeOf(err);
}

/** A failed packet workflow, reported like the runner's PacketError. */
function workflowFailed(ctx: CliContext, json: boolean, f: PacketFailureDetails): number {
  const err = new PacketError(f.code, f.message, { runId: f.runId ?? undefined, step: f.step ?? undefined, sqlstate: f.sqlstate ?? undefined, detail: f.proof ? { proof: f.proof, rolledBack: f.rolledBack } : undefined });
  if (!json && f.rolledBack?.length) ctx.err(`rolled back: ${f.rolledBack.filter((v) => v.action === 'down').map((v) => v.step).join(', ') || 'nothing'}`);
  if (!json && f.proof) ctx.err(`catalog ${f.proof.equal ? 'back at' : 'DIFFERS from'} the entry fingerprint${f.proof.equal ? '' : `: ${f.proof.diff.join(', ')}`}`);
  return failed(ctx, json, err);
}

/**
 * One progress line per step the packet finished or rolled back, to stderr. `onlyNew`: what the
 * packet had done before this command (an approve, a retry) is not repeated.
 */
function progress(ctx: CliContext, json: boolean, opts: { onlyNew?: boolean } = {}): (s: PacketState) => void {
  let seen: { steps: number; rolled: number; run: string | null } | undefined;
  return (s) => {
    if (json) return;
    if (!seen) {
      seen = opts.onlyNew ? { steps: s.steps.length, rolled: s.rolledBack.length, run: s.ledgerRunId } : { steps: 0, rolled: 0, run: null };
    }
    if (s.ledgerRunId && s.ledgerRunId !== seen.run) ctx.err(`ledger run ${s.ledgerRunId}; entry fingerprint ${s.entryHash?.slice(0, 12)}…${s.backupDir ? `; backup → ${s.backupDir}` : ''}`);
    for (const v of s.steps.slice(seen.steps)) ctx.err(`step ${v.step} ${v.action}${v.attempts ? ` after ${v.attempts} attempt(s)` : ''} in ${v.ms} ms — ${v.detail}`);
    for (const v of s.rolledBack.slice(seen.rolled)) ctx.err(`step ${v.step} ${v.action === 'down' ? 'rolled back' : v.action} in ${v.ms} ms — ${v.detail}`);
    seen = { steps: s.steps.length, rolled: s.rolledBack.length, run: s.ledgerRunId };
  };
}

/** The packet waits for a human: exit 3, saying who and with which command. */
function waiting(ctx: CliContext, json: boolean, workflowId: string, s: PacketState): number {
  if (s.stage === 'WAITING_FOR_OWNER') {
    const message = `step ${s.step} is a one-way door and needs an owner approval: the packet waits (workflow ${workflowId}) — birthgate approve --owner NAME --approval ID [--expect ${s.doorGovernedHash}]`;
    if (json) ctx.out(JSON.stringify({ ok: false, code: PacketFailure.Precondition, sqlstate: 'BG428', runId: s.ledgerRunId, step: s.step, waiting: 'owner', workflowId, governedHash: s.doorGovernedHash, message, state: s }, null, 2));
    else {
      ctx.err(`waiting at the one-way door (step ${s.step}) for the owner's approval; governed hash at the door ${s.doorGovernedHash}`);
      ctx.out(message);
    }
    return 3;
  }
  const message = `step ${s.step} failed at or past the one-way door and the packet is parked for an operator (workflow ${workflowId}): ${s.error?.message ?? ''} — birthgate packet retry | birthgate packet stop --reason R`;
  if (json) ctx.out(JSON.stringify({ ok: false, code: s.error?.code ?? PacketFailure.StepFailed, sqlstate: s.error?.sqlstate ?? null, runId: s.ledgerRunId, step: s.step, waiting: 'operator', workflowId, message, state: s }, null, 2));
  else ctx.out(message);
  return 3;
}

function reportApply(ctx: CliContext, json: boolean, workflowId: string, o: PacketOutcome<ApplyPacketResult>): number {
  if (o.kind === 'waiting') return waiting(ctx, json, workflowId, o.state);
  if (o.kind === 'failed') return workflowFailed(ctx, json, o.failure);
  const r = o.result;
  if (json) ctx.out(JSON.stringify({ ok: r.status === 'applied', ...r }, null, 2));
  else if (r.status === 'stopped') ctx.err(`the packet was stopped: ${r.note ?? ''}`);
  else {
    const applied = r.steps.filter((s) => s.action === 'up').map((s) => s.step);
    const skipped = r.steps.filter((s) => s.action === 'skip').map((s) => s.step);
    ctx.out(`applied through step ${r.through} (run ${r.ledgerRunId}, workflow ${r.workflowId}): ran ${applied.join(', ') || 'nothing'}; already applied ${skipped.join(', ') || 'none'}; birthgate_worker ${r.workerRole ? 'granted' : 'untouched'}`);
    ctx.out(`governed hash ${r.governedHash}`);
  }
  return r.status === 'applied' ? 0 : 1;
}

type Driver = { client: Client; estate: Estate; databaseUrl: string };

/**
 * Everything a packet command needs while it drives the workflow: the estate's identity (read with
 * the admin pool: the workflow id and task queue come from it), a Temporal client, and a packet
 * worker hosted in-process on that admin pool until the command returns.
 */
async function drive(ctx: CliContext, name: string, fn: (d: Driver) => Promise<number>, opts: { reportDir?: string } = {}): Promise<number> {
  const { databaseUrl, temporalAddress, namespace } = await ctx.endpoints();
  try {
    // Core's own warnings forwarded to the logger (stderr): by default Core prints them to stdout, into --json output.
    Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } } } });
  } catch {
    // already installed by the embedding process: keep it
  }
  const pool = createPool(databaseUrl, { max: PACKET_POOL_SIZE, applicationName: `birthgate-${name}` });
  pool.on('error', () => undefined);
  let connection: Connection | undefined;
  let native: NativeConnection | undefined;
  let worker: Awaited<ReturnType<typeof hostPacketWorker>> | undefined;
  try {
    const estate = await readEstate(pool);
    // The stack registers PacketStep on its dev server; an older server or an external cluster gets it here.
    await ensureSearchAttributes(temporalAddress, namespace).catch((err: Error) => ctx.err(`warning: could not register the PacketStep search attribute: ${err.message}`));
    connection = await Connection.connect({ address: temporalAddress });
    native = await NativeConnection.connect({ address: temporalAddress });
    worker = await hostPacketWorker({
      connection: native, namespace, estate, pool, databaseUrl, bundle: await packetBundle(ctx.config.home),
      reportDir: opts.reportDir ? path.resolve(opts.reportDir) : path.join(ctx.config.home, 'reports'), workerPassword: ctx.config.workerPassword,
    });
    return await fn({ client: new Client({ connection, namespace }), estate, databaseUrl });
  } finally {
    await worker?.stop();
    await native?.close().catch(() => undefined);
    await connection?.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}

/** Answers a refused decision (exit 3) or a refused input (exit 2); anything else is the caller's. */
function refusedDecision(ctx: CliContext, json: boolean, err: unknown): number {
  if (err instanceof PacketDecisionRefusedError) {
    if (json) ctx.out(JSON.stringify({ ok: false, refused: true, message: err.message }, null, 2));
    else ctx.err(`refused: ${err.message}`);
    return 3;
  }
  if (err instanceof PacketInputError) {
    if (json) ctx.out(JSON.stringify({ ok: false, refused: true, message: err.message }, null, 2));
    else ctx.err(err.message);
    return 2;
  }
  throw err;
}

/**
 * `rollback --to N` and the apply workflow: a packet waiting at its door holds the lease, and a
 * rollback is the operator's answer to it, so the wait is withdrawn first (`stop`, its steps stay
 * applied, then rolled back here). A packet parked past the door, or applying, is not touched.
 */
async function clearDoorWait(ctx: CliContext, d: Driver, to: number, json: boolean): Promise<number | undefined> {
  const st = await packetStatus(d.client, d.estate);
  if (st?.status !== 'RUNNING') return undefined;
  if (st.state?.stage === 'WAITING_FOR_OWNER') {
    await decidePacket(d.client, d.estate, { action: 'stop', actor: whoami(), reason: `birthgate rollback --to ${to}` });
    // Closed, not merely out of its wait: its last activity releases the lease the rollback needs.
    await d.client.workflow.getHandle(st.workflowId).result().catch(() => undefined);
    if (!json) ctx.err(`withdrew the packet waiting at its door (workflow ${st.workflowId}): rollback --to ${to} instead`);
    return undefined;
  }
  const stage = st.state?.stage ?? 'running (its state did not answer)';
  const message = `the packet workflow ${st.workflowId} is ${stage}${st.state?.step ? ` at step ${st.state.step}` : ''}: rollback --to ${to} refused while it holds the packet` +
    (st.state?.stage === 'PARKED' ? ' — stop it first (birthgate packet stop --reason R)' : ' — wait for it');
  if (json) ctx.out(JSON.stringify({ ok: false, code: PacketFailure.Busy, message }, null, 2));
  else ctx.err(`${PacketFailure.Busy}: ${message}`);
  return st.state?.stage === 'PARKED' ? 3 : 2;
}

async function decideCommand(ctx: CliContext, argv: string[], action: 'retry' | 'stop'): Promise<number> {
  const a = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' }, json: { type: 'boolean' } }, DecideArgs);
  if (action === 'stop' && !a.reason) throw new UsageError('--reason: say why the packet stops (it is recorded)');
  return drive(ctx, `packet-${action}`, async (d) => {
    try {
      const ack = await decidePacket(d.client, d.estate, { action, actor: a.actor ?? whoami(), reason: a.reason });
      if (!a.json) ctx.err(ack.note);
    } catch (err) {
      return refusedDecision(ctx, a.json, err);
    }
    const handle = d.client.workflow.getHandle((await packetStatus(d.client, d.estate))!.workflowId);
    const o = await waitForPacket<ApplyPacketResult>(d.client, handle, { onState: progress(ctx, a.json, { onlyNew: true }) });
    if (action === 'stop' && o.kind === 'done' && o.result.status === 'stopped') {
      if (a.json) ctx.out(JSON.stringify({ ok: true, ...o.result }, null, 2));
      else ctx.out(`stopped: ${o.result.note ?? ''}`);
      return 0;
    }
    return reportApply(ctx, a.json, handle.workflowId, o);
  });
}

export const commands: Command[] = [
  {
    name: 'apply',
    summary: 'apply the KB-7D57 packet as a workflow (backup, drift check, steps in order); waits at the one-way door for the owner (exit 3) unless --owner/--approval',
    usage: 'apply [--through N] [--owner NAME --approval ID] [--expect GOVERNED_HASH] [--expect-live-md5 kb-2590|fn=md5,…] [--report-dir DIR] [--json]',
    async run(argv, ctx) {
      const a = parse(argv, { through: { type: 'string' }, owner: { type: 'string' }, approval: { type: 'string' }, expect: { type: 'string' }, 'expect-live-md5': { type: 'string' }, 'report-dir': { type: 'string' }, json: { type: 'boolean' } }, ApplyArgs);
      return drive(ctx, 'apply', async (d) => {
        let run;
        try {
          run = await startApply(d.client, { estate: d.estate, through: a.through, expectGovernedHash: a.expect, expectLiveMd5: a['expect-live-md5'], grantWorker: true, requestedBy: a.owner ?? whoami() });
        } catch (err) {
          return refusedDecision(ctx, a.json, err);
        }
        if (!a.json) ctx.err(`${run.attached ? 'attached to' : 'started'} the packet workflow ${run.workflowId}`);
        const onState = progress(ctx, a.json);
        let o = await waitForPacket<ApplyPacketResult>(d.client, run.handle, { onState });
        // apply --owner --approval: the same Workflow Update as `birthgate approve`, sent when the packet reaches the door.
        if (o.kind === 'waiting' && o.state.stage === 'WAITING_FOR_OWNER' && a.owner && a.approval) {
          try {
            const ack = await approvePacket(d.client, d.estate, { owner: a.owner, approvalId: a.approval });
            if (!a.json) ctx.err(ack.note);
          } catch (err) {
            return refusedDecision(ctx, a.json, err);
          }
          o = await waitForPacket<ApplyPacketResult>(d.client, run.handle, { onState });
        }
        return reportApply(ctx, a.json, run.workflowId, o);
      }, { reportDir: a['report-dir'] });
    },
  },
  {
    name: 'approve',
    summary: "the owner's approval of the one-way door (KB-7D57 step 7) for the packet waiting there; refused (exit 3, with the reason) unless it waits",
    usage: 'approve --owner NAME --approval ID [--expect GOVERNED_HASH] [--json]',
    async run(argv, ctx) {
      const a = parse(argv, { owner: { type: 'string' }, approval: { type: 'string' }, expect: { type: 'string' }, json: { type: 'boolean' } }, ApproveArgs);
      return drive(ctx, 'approve', async (d) => {
        try {
          const ack = await approvePacket(d.client, d.estate, { owner: a.owner, approvalId: a.approval, expectGovernedHash: a.expect });
          if (!a.json) ctx.err(ack.note);
        } catch (err) {
          return refusedDecision(ctx, a.json, err);
        }
        const handle = d.client.workflow.getHandle((await packetStatus(d.client, d.estate))!.workflowId);
        return reportApply(ctx, a.json, handle.workflowId, await waitForPacket<ApplyPacketResult>(d.client, handle, { onState: progress(ctx, a.json, { onlyNew: true }) }));
      });
    },
  },
  {
    name: 'packet retry',
    summary: 'retry the failed step of a packet parked past the one-way door (an operator decision; exit 3 if refused)',
    usage: 'packet retry [--actor NAME] [--reason R] [--json]',
    run: (argv, ctx) => decideCommand(ctx, argv, 'retry'),
  },
  {
    name: 'packet stop',
    summary: 'stop a packet parked past the one-way door, or withdraw one waiting at it; what ran stays (roll back with rollback --to N)',
    usage: 'packet stop --reason R [--actor NAME] [--json]',
    run: (argv, ctx) => decideCommand(ctx, argv, 'stop'),
  },
  {
    name: 'rollback',
    summary: 'roll the packet back to step N as a workflow (downs in reverse; 0 = the entry state); step 7 refuses after a cross-collection birth',
    usage: 'rollback --to N [--json]',
    accepts: (args) => args.some((a) => a === '--to' || a.startsWith('--to=')),
    async run(argv, ctx) {
      const a = parse(argv, { to: { type: 'string' }, json: { type: 'boolean' } }, RollbackArgs);
      return drive(ctx, 'rollback', async (d) => {
        let run;
        try {
          const busy = await clearDoorWait(ctx, d, a.to, a.json);
          if (busy !== undefined) return busy;
          run = await startRollback(d.client, { estate: d.estate, to: a.to, requestedBy: whoami() });
        } catch (err) {
          return refusedDecision(ctx, a.json, err);
        }
        if (!a.json) ctx.err(`${run.attached ? 'attached to' : 'started'} the packet rollback workflow ${run.workflowId}`);
        const o = await waitForPacket<PacketRollbackResult>(d.client, run.handle, { onState: progress(ctx, a.json) });
        if (o.kind === 'failed') return workflowFailed(ctx, a.json, o.failure);
        if (o.kind === 'waiting') return waiting(ctx, a.json, run.workflowId, o.state);
        const r = o.result;
        if (a.json) ctx.out(JSON.stringify({ ok: true, ...r }, null, 2));
        else ctx.out(`rolled back to step ${r.to} (run ${r.ledgerRunId}, workflow ${r.workflowId}): undid ${r.steps.filter((s) => s.action === 'down').map((s) => s.step).join(', ') || 'nothing (not applied)'}`);
        return 0;
      });
    },
  },
  {
    name: 'rehearse',
    summary: 'the whole packet in one BEGIN … ROLLBACK with the post-apply test plan; proves entry hash == exit hash (KB-3A66)',
    usage: 'rehearse [--report FILE] [--json]',
    async run(argv, ctx) {
      const a = parse(argv, { report: { type: 'string' }, json: { type: 'boolean' } }, RehearseArgs);
      const { databaseUrl } = await ctx.endpoints();
      // 3 connections: the advisory-lock session, the step's DDL session, the ledger writes.
      const pool = createPool(databaseUrl, { max: 4, applicationName: 'birthgate-rehearse' });
      try {
        const r = await rehearse(pool, { report: a.report, onProgress: a.json ? undefined : (l) => ctx.err(l) });
        if (a.json) ctx.out(JSON.stringify(r, null, 2));
        else {
          ctx.out(renderMarkdown(r));
          if (r.files.length) ctx.err(`report written: ${r.files.join(', ')}`);
        }
        return r.status === 'PASS' ? 0 : 1;
      } catch (err) {
        return failed(ctx, a.json, err);
      } finally {
        await pool.end();
      }
    },
  },
];
