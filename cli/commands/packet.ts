// birthgate apply | approve | rollback --to N | packet retry | packet stop | rehearse — the KB-7D57
// apply packet, its rollbacks and the KB-3A66 rehearsal, against the stack's database as the superuser
// (ctx.endpoints().databaseUrl).
//
// The packet runs as Temporal workflows (issue 9 item 1): `apply` starts or attaches to the estate
// database's applyPacket workflow, `approve` is the owner's Workflow Update at the one-way door,
// `packet retry | stop` answer a parked packet, `rollback --to N` runs packetRollback. Each of them
// hosts a packet worker in-process with the admin pool while it waits (the long-running admission
// worker never holds that connection), prints the packet's progress, and returns when the workflow is
// done or waits for a human (exit 3). The rehearsal stays a direct call (rehearsal/). Progress goes to
// stderr, in --json mode too; a failure is a CliError whose --json object keeps the packet's fields
// (ok, code, sqlstate, runId, step, message) beside `error`. The SDK and the runner load on use.
import os from 'node:os';
import path from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import type { NativeConnection } from '@temporalio/worker';
import { z } from 'zod';
import type { PacketOutcome } from '../../client/packet.ts';
import type { ApplyPacketResult, Estate, PacketFailureDetails, PacketRollbackResult, PacketState } from '../../contracts/packet.ts';
import { PacketError, PacketFailure } from '../../packet/errors.ts';
import { parseFlags } from '../args.ts';
import { CliError, EXIT, UsageError, type CliContext, type Command } from '../command.ts';
import { installCliRuntime } from '../process.ts';

type Spec = Record<string, { type: 'boolean' | 'string' }>;

function parse<T extends z.ZodTypeAny>(argv: string[], spec: Spec, schema: T): z.output<T> {
  const { values } = parseFlags(argv, spec);
  const r = schema.safeParse(values);
  if (!r.success) {
    throw new UsageError(r.error.issues.map((i) => {
      const flag = i.path.length ? `--${i.path.join('.')}` : 'arguments';
      return i.code === 'invalid_type' && /received undefined/.test(i.message) ? `${flag} is required` : `${flag}: ${i.message}`;
    }).join('; '));
  }
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
    // entry md5s, KB-2590 §4) or `fn=md5,fn=md5` (md5 of pg_get_functiondef); read by expectedMd5.
    'expect-live-md5': z.string().min(1).max(400).optional(),
    'report-dir': z.string().min(1).optional(),
    json: z.boolean().default(false),
  })
  .refine((a) => (a.owner === undefined) === (a.approval === undefined), { message: '--owner and --approval go together (KB-7D57 owner approval)', path: ['approval'] });

/** --expect-live-md5 as the runner takes it (packet/live-bodies.ts, loaded only when the option is given). */
async function expectedMd5(text: string | undefined) {
  if (text === undefined) return undefined;
  const { ExpectedMd5Schema, KB_2590_ENTRY_MD5 } = await import('../../packet/live-bodies.ts');
  if (text === 'kb-2590') return KB_2590_ENTRY_MD5;
  const r = ExpectedMd5Schema.safeParse(Object.fromEntries(text.split(',').map((pair) => pair.split('=', 2) as [string, string])));
  if (!r.success) throw new UsageError('--expect-live-md5: kb-2590, or fn=md5[,fn=md5] (32 hex digits each)');
  return r.data;
}

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
 * approval; an estate that drifted from the runner's record, which an operator looks at and then
 * repairs or accepts with `birthgate rebaseline`), 2 for a refusal that changed nothing (a rollback
 * whose preconditions fail, bad request, a busy packet lock or lease), 1 for a failure.
 */
export function exitCodeOf(err: PacketError): number {
  if (err.code === PacketFailure.EntryDrift) return 3;
  if (err.code === PacketFailure.Precondition) return /needs an owner approval/.test(err.message) ? 3 : 2;
  if (err.code === PacketFailure.BadRequest || err.code === PacketFailure.Busy) return 2;
  return 1;
}

/** What to do about each kind of packet failure. */
function nextFor(err: PacketError): string {
  switch (err.code) {
    case PacketFailure.Precondition:
      return /needs an owner approval/.test(err.message)
        ? 'the estate owner approves the door: `birthgate approve --owner NAME --approval ID`'
        : 'nothing was changed: resolve what the precheck names (`birthgate verify` shows the estate), then run it again';
    case PacketFailure.Busy:
      return 'another run or workflow holds the packet: wait for it, or stop a parked one (`birthgate packet stop --reason R`), then run it again';
    case PacketFailure.EntryDrift:
      return 'the estate is not the state the packet starts from: `birthgate rehearse --report reports/r1` shows the difference; `birthgate verify` the entry state';
    case PacketFailure.BadRequest:
      return '`birthgate help apply` shows the options';
    case PacketFailure.StoppedPastOneWay:
      return 'past the one-way door nothing is rolled back: fix the cause, then `birthgate packet retry`, or `birthgate packet stop --reason R`';
    default:
      return `the ledger${err.runId ? ` run ${err.runId}` : ''} records what ran; fix the cause and run it again, or roll back with \`birthgate rollback --to N\``;
  }
}

/** A packet failure as the CLI's error: the packet's own fields stay in the --json object. */
function packetError(err: PacketError): CliError {
  return new CliError(err.message, exitCodeOf(err) as 1 | 2 | 3, {
    code: err.code,
    next: nextFor(err),
    details: { ok: false, code: err.code, sqlstate: err.sqlstate ?? null, runId: err.runId ?? null, step: err.step ?? null, message: err.message, detail: err.detail ?? null },
  });
}

/** A failed packet workflow, reported like the runner's PacketError. */
function workflowFailed(ctx: CliContext, f: PacketFailureDetails): CliError {
  const err = new PacketError(f.code, f.message, { runId: f.runId ?? undefined, step: f.step ?? undefined, sqlstate: f.sqlstate ?? undefined, detail: f.proof ? { proof: f.proof, rolledBack: f.rolledBack } : undefined });
  if (f.rolledBack?.length) ctx.err(`rolled back: ${f.rolledBack.filter((v) => v.action === 'down').map((v) => v.step).join(', ') || 'nothing'}`);
  if (f.proof) ctx.err(`catalog ${f.proof.equal ? 'back at' : 'DIFFERS from'} the entry fingerprint${f.proof.equal ? '' : `: ${f.proof.diff.join(', ')}`}`);
  return packetError(err);
}

/**
 * One progress line per step the packet finished or rolled back, to stderr (in --json mode too: stdout
 * stays the one JSON value). `onlyNew`: what the packet had done before this command (an approve, a
 * retry) is not repeated.
 */
function progress(ctx: CliContext, opts: { onlyNew?: boolean } = {}): (s: PacketState) => void {
  let seen: { steps: number; rolled: number; run: string | null } | undefined;
  return (s) => {
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
    const next = `birthgate approve --owner NAME --approval ID [--expect ${s.doorGovernedHash}]`;
    const message = `step ${s.step} is a one-way door and needs an owner approval: the packet waits (workflow ${workflowId}) — ${next}`;
    ctx.err(`waiting at the one-way door (step ${s.step}) for the owner's approval; governed hash at the door ${s.doorGovernedHash}`);
    if (json) ctx.out(JSON.stringify({ ok: false, code: PacketFailure.Precondition, sqlstate: 'BG428', runId: s.ledgerRunId, step: s.step, waiting: 'owner', workflowId, governedHash: s.doorGovernedHash, message, next, state: s }, null, 2));
    else ctx.out(message);
    return EXIT.waiting;
  }
  const next = 'birthgate packet retry | birthgate packet stop --reason R';
  const message = `step ${s.step} failed at or past the one-way door and the packet is parked for an operator (workflow ${workflowId}): ${s.error?.message ?? ''} — ${next}`;
  if (json) ctx.out(JSON.stringify({ ok: false, code: s.error?.code ?? PacketFailure.StepFailed, sqlstate: s.error?.sqlstate ?? null, runId: s.ledgerRunId, step: s.step, waiting: 'operator', workflowId, message, next, state: s }, null, 2));
  else ctx.out(message);
  return EXIT.waiting;
}

function reportApply(ctx: CliContext, json: boolean, workflowId: string, o: PacketOutcome<ApplyPacketResult>): number {
  if (o.kind === 'waiting') return waiting(ctx, json, workflowId, o.state);
  if (o.kind === 'failed') throw workflowFailed(ctx, o.failure);
  const r = o.result;
  if (json) ctx.out(JSON.stringify({ ok: r.status === 'applied', ...r }, null, 2));
  if (r.status === 'stopped') {
    ctx.err(`the packet was stopped: ${r.note ?? ''}`);
    ctx.err('next: what ran stays applied; `birthgate apply` runs the packet again, `birthgate rollback --to N` undoes it');
  } else if (!json) {
    const applied = r.steps.filter((s) => s.action === 'up').map((s) => s.step);
    const skipped = r.steps.filter((s) => s.action === 'skip').map((s) => s.step);
    ctx.out(`applied through step ${r.through} (run ${r.ledgerRunId}, workflow ${r.workflowId}): ran ${applied.join(', ') || 'nothing'}; already applied ${skipped.join(', ') || 'none'}; birthgate_worker ${r.workerRole ? 'granted' : 'untouched'}`);
    ctx.out(`governed hash ${r.governedHash}`);
  }
  return r.status === 'applied' ? EXIT.done : EXIT.failed;
}

type PacketClient = typeof import('../../client/packet.ts');
type Driver = { client: Client; estate: Estate; databaseUrl: string; api: PacketClient };

/**
 * Everything a packet command needs while it drives the workflow: the estate's identity (read with
 * the admin pool: the workflow id and task queue come from it), a Temporal client, and a packet
 * worker hosted in-process on that admin pool until the command returns.
 */
async function drive(ctx: CliContext, name: string, fn: (d: Driver) => Promise<number>, opts: { reportDir?: string } = {}): Promise<number> {
  const { databaseUrl, temporalAddress, namespace } = await ctx.endpoints();
  await installCliRuntime();
  const api = await import('../../client/packet.ts');
  const sdk = await import('@temporalio/client');
  const worker_ = await import('@temporalio/worker');
  const { createPool } = await import('../../db/pool.ts');
  const { ensureSearchAttributes } = await import('../../stack/temporal.ts');
  const { hostPacketWorker, PACKET_POOL_SIZE, packetBundle } = await import('../../workers/packet-worker.ts');
  const pool = createPool(databaseUrl, { max: PACKET_POOL_SIZE, applicationName: `birthgate-${name}` });
  pool.on('error', () => undefined);
  let connection: Connection | undefined;
  let native: NativeConnection | undefined;
  let worker: Awaited<ReturnType<typeof hostPacketWorker>> | undefined;
  try {
    const estate = await api.readEstate(pool);
    // The stack registers PacketStep on its dev server; an older server or an external cluster gets it here.
    await ensureSearchAttributes(temporalAddress, namespace).catch((err: Error) => ctx.err(`warning: could not register the PacketStep search attribute: ${err.message}`));
    connection = await sdk.Connection.connect({ address: temporalAddress });
    native = await worker_.NativeConnection.connect({ address: temporalAddress });
    worker = await hostPacketWorker({
      connection: native, namespace, estate, pool, databaseUrl, bundle: await packetBundle(ctx.config.home),
      reportDir: opts.reportDir ? path.resolve(opts.reportDir) : path.join(ctx.config.home, 'reports'), workerPassword: ctx.config.workerPassword,
    });
    return await fn({ client: new sdk.Client({ connection, namespace }), estate, databaseUrl, api });
  } catch (err) {
    throw err instanceof PacketError ? packetError(err) : err;
  } finally {
    await worker?.stop();
    await native?.close().catch(() => undefined);
    await connection?.close().catch(() => undefined);
    await pool.end().catch(() => undefined);
  }
}

/** A refused decision (exit 3) or a refused input (exit 2) as the CLI's error; anything else is the caller's. */
function refusedDecision(d: Driver, err: unknown): CliError {
  if (err instanceof d.api.PacketDecisionRefusedError) {
    return new CliError(`refused: ${err.message}`, EXIT.waiting, {
      code: 'REFUSED',
      next: 'nothing was changed; the reason is above, and the packet workflow in the Web UI (PacketStep) shows where it is',
      details: { ok: false, refused: true, message: err.message },
    });
  }
  if (err instanceof d.api.PacketInputError) {
    return new CliError(err.message, EXIT.refused, { code: 'REFUSED', next: 'nothing was changed: do what the message says, then run it again', details: { ok: false, refused: true, message: err.message } });
  }
  throw err;
}

/**
 * `rollback --to N` and the apply workflow: a packet waiting at its door holds the lease, and a
 * rollback is the operator's answer to it, so the wait is withdrawn first (`stop`, its steps stay
 * applied, then rolled back here). A packet parked past the door, or applying, is not touched.
 */
async function clearDoorWait(ctx: CliContext, d: Driver, to: number): Promise<void> {
  const st = await d.api.packetStatus(d.client, d.estate);
  if (st?.status !== 'RUNNING') return;
  if (st.state?.stage === 'WAITING_FOR_OWNER') {
    await d.api.decidePacket(d.client, d.estate, { action: 'stop', actor: whoami(), reason: `birthgate rollback --to ${to}` });
    // Closed, not merely out of its wait: its last activity releases the lease the rollback needs.
    await d.client.workflow.getHandle(st.workflowId).result().catch(() => undefined);
    ctx.err(`withdrew the packet waiting at its door (workflow ${st.workflowId}): rollback --to ${to} instead`);
    return;
  }
  const parked = st.state?.stage === 'PARKED';
  const stage = st.state?.stage ?? 'running (its state did not answer)';
  const message = `the packet workflow ${st.workflowId} is ${stage}${st.state?.step ? ` at step ${st.state.step}` : ''}: rollback --to ${to} refused while it holds the packet` +
    (parked ? ' — stop it first (birthgate packet stop --reason R)' : ' — wait for it');
  throw new CliError(message, parked ? EXIT.waiting : EXIT.refused, {
    code: PacketFailure.Busy,
    next: parked ? '`birthgate packet stop --reason R`, then `birthgate rollback --to N`' : 'wait for the packet workflow to finish (its progress: PacketStep in the Web UI), then roll back',
    details: { ok: false, code: PacketFailure.Busy, message },
  });
}

async function decideCommand(ctx: CliContext, argv: string[], action: 'retry' | 'stop'): Promise<number> {
  const a = parse(argv, { actor: { type: 'string' }, reason: { type: 'string' } }, DecideArgs);
  if (action === 'stop' && !a.reason) throw new UsageError('--reason: say why the packet stops (it is recorded)');
  return drive(ctx, `packet-${action}`, async (d) => {
    try {
      const ack = await d.api.decidePacket(d.client, d.estate, { action, actor: a.actor ?? whoami(), reason: a.reason });
      ctx.err(ack.note);
    } catch (err) {
      throw refusedDecision(d, err);
    }
    const handle = d.client.workflow.getHandle((await d.api.packetStatus(d.client, d.estate))!.workflowId);
    const o = await d.api.waitForPacket<ApplyPacketResult>(d.client, handle, { onState: progress(ctx, { onlyNew: true }) });
    if (action === 'stop' && o.kind === 'done' && o.result.status === 'stopped') {
      if (a.json) ctx.out(JSON.stringify({ ok: true, ...o.result }, null, 2));
      else ctx.out(`stopped: ${o.result.note ?? ''}`);
      return EXIT.done;
    }
    return reportApply(ctx, a.json, handle.workflowId, o);
  });
}

export const commands: Command[] = [
  {
    name: 'apply',
    summary: 'apply the KB-7D57 packet as a workflow (backup, drift check, steps in order); waits at the one-way door for the owner (exit 3) unless --owner/--approval',
    usage: 'apply [--through N] [--owner NAME --approval ID] [--expect GOVERNED_HASH] [--expect-live-md5 kb-2590|fn=md5,…] [--report-dir DIR] [--json]',
    options: [
      ['--through N', 'apply steps 1…N only (1–6 are reversible; 7 is the one-way door)'],
      ['--owner NAME --approval ID', "the estate owner's approval of the one-way door (step 7), given up front"],
      ['--expect GOVERNED_HASH', 'refuse unless the estate is the one a rehearsal report saw (its governed hash)'],
      ['--expect-live-md5 SPEC', 'steps 4/5: refuse live birth functions other than kb-2590 (or fn=md5,…)'],
      ['--report-dir DIR', 'where the backup and the run report go (default BIRTHGATE_HOME/reports)'],
    ],
    examples: ['birthgate apply --through 6', 'birthgate apply --owner estate-owner --approval CHG-1234 --json'],
    async run(argv, ctx) {
      const a = parse(argv, { through: { type: 'string' }, owner: { type: 'string' }, approval: { type: 'string' }, expect: { type: 'string' }, 'expect-live-md5': { type: 'string' }, 'report-dir': { type: 'string' } }, ApplyArgs);
      const expectLiveMd5 = await expectedMd5(a['expect-live-md5']);
      return drive(ctx, 'apply', async (d) => {
        let run;
        try {
          run = await d.api.startApply(d.client, { estate: d.estate, through: a.through, expectGovernedHash: a.expect, expectLiveMd5, grantWorker: true, requestedBy: a.owner ?? whoami() });
        } catch (err) {
          throw refusedDecision(d, err);
        }
        ctx.err(`${run.attached ? 'attached to' : 'started'} the packet workflow ${run.workflowId}`);
        const onState = progress(ctx);
        let o = await d.api.waitForPacket<ApplyPacketResult>(d.client, run.handle, { onState });
        // apply --owner --approval: the same Workflow Update as `birthgate approve`, sent when the packet reaches the door.
        if (o.kind === 'waiting' && o.state.stage === 'WAITING_FOR_OWNER' && a.owner && a.approval) {
          try {
            const ack = await d.api.approvePacket(d.client, d.estate, { owner: a.owner, approvalId: a.approval });
            ctx.err(ack.note);
          } catch (err) {
            throw refusedDecision(d, err);
          }
          o = await d.api.waitForPacket<ApplyPacketResult>(d.client, run.handle, { onState });
        }
        return reportApply(ctx, a.json, run.workflowId, o);
      }, { reportDir: a['report-dir'] });
    },
  },
  {
    name: 'approve',
    summary: "the owner's approval of the one-way door (KB-7D57 step 7) for the packet waiting there; refused (exit 3, with the reason) unless it waits",
    usage: 'approve --owner NAME --approval ID [--expect GOVERNED_HASH] [--json]',
    options: [
      ['--owner NAME', 'the estate owner who approves (recorded in the ledger)'],
      ['--approval ID', 'the change or approval id (recorded)'],
      ['--expect GOVERNED_HASH', 'approve only the estate the packet showed at its door'],
    ],
    examples: ['birthgate approve --owner estate-owner --approval CHG-1234'],
    async run(argv, ctx) {
      const a = parse(argv, { owner: { type: 'string' }, approval: { type: 'string' }, expect: { type: 'string' } }, ApproveArgs);
      return drive(ctx, 'approve', async (d) => {
        try {
          const ack = await d.api.approvePacket(d.client, d.estate, { owner: a.owner, approvalId: a.approval, expectGovernedHash: a.expect });
          ctx.err(ack.note);
        } catch (err) {
          throw refusedDecision(d, err);
        }
        const handle = d.client.workflow.getHandle((await d.api.packetStatus(d.client, d.estate))!.workflowId);
        return reportApply(ctx, a.json, handle.workflowId, await d.api.waitForPacket<ApplyPacketResult>(d.client, handle, { onState: progress(ctx, { onlyNew: true }) }));
      });
    },
  },
  {
    name: 'packet retry',
    summary: 'retry the failed step of a packet parked past the one-way door (an operator decision; exit 3 if refused)',
    usage: 'packet retry [--actor NAME] [--reason R] [--json]',
    options: [
      ['--actor NAME', 'who decides (default: your login name)'],
      ['--reason R', 'why (recorded)'],
    ],
    examples: ['birthgate packet retry --reason "step 9 repaired"'],
    run: (argv, ctx) => decideCommand(ctx, argv, 'retry'),
  },
  {
    name: 'packet stop',
    summary: 'stop a packet parked past the one-way door, or withdraw one waiting at it; what ran stays (roll back with rollback --to N)',
    usage: 'packet stop --reason R [--actor NAME] [--json]',
    options: [
      ['--reason R', 'why the packet stops (required, recorded)'],
      ['--actor NAME', 'who decides (default: your login name)'],
    ],
    examples: ['birthgate packet stop --reason "change window closed"'],
    run: (argv, ctx) => decideCommand(ctx, argv, 'stop'),
  },
  {
    name: 'rollback',
    summary: 'roll the packet back to step N as a workflow (downs in reverse; 0 = the entry state); step 7 refuses after a cross-collection birth',
    usage: 'rollback --to N [--json]',
    options: [['--to N', 'the step to roll back to (0: the entry state, before step 1)']],
    examples: ['birthgate rollback --to 0', 'birthgate rollback --to 6 --json'],
    accepts: (args) => args.some((a) => a === '--to' || a.startsWith('--to=')),
    async run(argv, ctx) {
      const a = parse(argv, { to: { type: 'string' } }, RollbackArgs);
      return drive(ctx, 'rollback', async (d) => {
        let run;
        try {
          await clearDoorWait(ctx, d, a.to);
          run = await d.api.startRollback(d.client, { estate: d.estate, to: a.to, requestedBy: whoami() });
        } catch (err) {
          if (err instanceof CliError) throw err;
          throw refusedDecision(d, err);
        }
        ctx.err(`${run.attached ? 'attached to' : 'started'} the packet rollback workflow ${run.workflowId}`);
        const o = await d.api.waitForPacket<PacketRollbackResult>(d.client, run.handle, { onState: progress(ctx) });
        if (o.kind === 'failed') throw workflowFailed(ctx, o.failure);
        if (o.kind === 'waiting') return waiting(ctx, a.json, run.workflowId, o.state);
        const r = o.result;
        if (a.json) ctx.out(JSON.stringify({ ok: true, ...r }, null, 2));
        else ctx.out(`rolled back to step ${r.to} (run ${r.ledgerRunId}, workflow ${r.workflowId}): undid ${r.steps.filter((s) => s.action === 'down').map((s) => s.step).join(', ') || 'nothing (not applied)'}`);
        return EXIT.done;
      });
    },
  },
  {
    name: 'rehearse',
    summary: 'the whole packet in one BEGIN … ROLLBACK with the post-apply test plan; proves entry hash == exit hash (KB-3A66)',
    usage: 'rehearse [--report FILE] [--json]',
    options: [['--report FILE', 'also write the report to FILE.md and FILE.json']],
    examples: ['birthgate rehearse --report reports/r1', 'birthgate rehearse --json'],
    async run(argv, ctx) {
      const a = parse(argv, { report: { type: 'string' } }, RehearseArgs);
      const { databaseUrl } = await ctx.endpoints();
      const { createPool } = await import('../../db/pool.ts');
      const { rehearse } = await import('../../rehearsal/rehearse.ts');
      const { renderMarkdown } = await import('../../rehearsal/report.ts');
      // 3 connections: the advisory-lock session, the step's DDL session, the ledger writes.
      const pool = createPool(databaseUrl, { max: 4, applicationName: 'birthgate-rehearse' });
      try {
        // Progress on stderr in both modes: stdout is the report (markdown, or the one JSON value).
        const r = await rehearse(pool, { report: a.report, onProgress: (l) => ctx.err(l) });
        if (a.json) ctx.out(JSON.stringify(r, null, 2));
        else ctx.out(renderMarkdown(r));
        if (r.files.length) ctx.err(`report written: ${r.files.join(', ')}`);
        if (r.status !== 'PASS') ctx.err('next: the report above names what failed; fix it before `birthgate apply`');
        return r.status === 'PASS' ? EXIT.done : EXIT.failed;
      } catch (err) {
        throw err instanceof PacketError ? packetError(err) : err;
      } finally {
        await pool.end();
      }
    },
  },
];
