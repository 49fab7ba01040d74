// The apply packet's activities (issue 9 item 1): the packet runner's units (packet/step-runner.ts,
// packet/apply.ts) as Temporal activities for workflows/apply-packet.ts and workflows/packet-rollback.ts.
// Built from the estate's ADMIN pool, so they run only in a packet worker (workers/packet-worker.ts),
// never in the least-privilege admission worker.
//
// Lock discipline: every activity takes the packet advisory lock for its own duration; between
// activities the packet lease (packet/ledger.ts) names the workflow run that owns the packet. The first
// activity (beginPacketRun) takes the lease — clearing the lease of a workflow run Temporal reports
// closed — and the last (endPacketRun) releases it; every step refuses unless its workflow holds it.
//
// Every activity checks it is connected to the estate its workflow belongs to (system identifier and
// database name), and every step is idempotent (verify before up / down), so a retry after a worker
// died mid-step redoes only what did not commit.
import fs from 'node:fs';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import type { z } from 'zod';
import { projectRoot } from '../config/index.ts';
import {
  BeginRunInput, type BeginRunResult, describeIssues, EndRunInput, Estate, PacketFailure, type PacketErrorView,
  PlanRollbackInput, type ProofView, ProveInput, StepInput, type StepInfo, type StepRunResult, type StepView,
} from '../contracts/packet.ts';
import { backupDir, MIN_ROLLBACK_ATTEMPTS, precheckPlan, prove, refuseRollback, rollbackPlan } from '../packet/apply.ts';
import { takeBackup } from '../packet/backup.ts';
import { DdlOptionsSchema } from '../packet/ddl.ts';
import { checkEntry, governedHash } from '../packet/drift.ts';
import { messageOf, PacketError, sqlstateOf } from '../packet/errors.ts';
import type { PacketEvent } from '../packet/events.ts';
import { fingerprintHash, guardedFingerprint } from '../packet/fingerprint.ts';
import {
  clearLease, ensureLedger, finishRun, lastRecordedState, type PacketLease, releaseLease, runEntry, sameHolder, setLeaseRun, setRunBackup, startRun, takeLease,
} from '../packet/ledger.ts';
import { acquirePacketLock, type LeaseRule } from '../packet/lock.ts';
import { dropWorkerRole, installWorkerRole } from '../packet/roles.ts';
import { applyStep, rollbackStep, type StepOutcome } from '../packet/step-runner.ts';
import { discoverSteps, findStep, oneWayDoor, type PacketStep } from '../packet/steps.ts';

export type PacketActivityDeps = {
  /** The estate's admin pool (a superuser: the packet's DDL). At least 4 connections. */
  pool: pg.Pool;
  /** For pg_dump in the backup; default: none (the catalog backup alone). */
  databaseUrl?: string;
  /** Base directory of the backups (the CLI passes <BIRTHGATE_HOME>/reports). */
  reportDir?: string;
  /** birthgate_worker's password, for a run that grants the worker role at its end. Never in history. */
  workerPassword?: string;
  /** How often a running activity heartbeats (its heartbeat timeout is in workflows/packet-record.ts). */
  heartbeatMs?: number;
};

// Class 08 connection exceptions, 57P01-03 shutdown, 53xxx resources, 40001/40P01, 55P03 lock timeout:
// the step is idempotent, so the same call may well succeed next time.
const TRANSIENT_SQLSTATE = /^(08|53|57P0|40001|40P01|55P03)/;
const TRANSIENT_NODE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|timeout exceeded when trying to connect/i;

function view(e: PacketError): PacketErrorView {
  return { code: e.code, message: e.message, step: e.step ?? null, sqlstate: e.sqlstate ?? null, runId: e.runId ?? null };
}

/**
 * What an activity throws: its PacketError as an ApplicationFailure of the same type (the code), with
 * the structured view in its details. Retried only when a retry can help: a busy packet lock (an
 * earlier attempt still finishing) or a lost connection; every refusal and failure the packet decided
 * is final, so the workflow handles it (roll back before the door, park past it).
 */
export function toPacketFailure(err: unknown, what: string): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof PacketError) {
    const cause = sqlstateOf(err.cause) ?? err.sqlstate;
    const transient = err.code === PacketFailure.Busy
      || (err.code === PacketFailure.StepFailed && ((cause !== undefined && TRANSIENT_SQLSTATE.test(cause)) || TRANSIENT_NODE.test(err.message)));
    return ApplicationFailure.create({ type: err.code, message: err.message, nonRetryable: !transient, details: [view(err)] });
  }
  const code = sqlstateOf(err) ?? (err as { code?: string } | null)?.code ?? '';
  const message = `${what}: ${messageOf(err)}`;
  const transient = TRANSIENT_SQLSTATE.test(code) || TRANSIENT_NODE.test(message);
  return ApplicationFailure.create({
    type: PacketFailure.StepFailed,
    message,
    nonRetryable: !transient,
    details: [{ code: PacketFailure.StepFailed, message, step: null, sqlstate: sqlstateOf(err) ?? null, runId: null } satisfies PacketErrorView],
  });
}

function bad(message: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: PacketFailure.BadRequest, message, nonRetryable: true,
    details: [{ code: PacketFailure.BadRequest, message, step: null, sqlstate: null, runId: null } satisfies PacketErrorView],
  });
}

function parse<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const r = schema.safeParse(raw);
  if (!r.success) throw bad(`${what}: invalid input: ${describeIssues(r.error)}`);
  return r.data;
}

/** The estate this pool is connected to (the client derives the workflow id from it before the start). */
export async function readEstate(q: Pick<pg.Pool, 'query'>): Promise<Estate> {
  const r = await q.query<{ sysid: string; db: string }>(`SELECT system_identifier::text AS sysid, current_database() AS db FROM pg_control_system()`);
  return Estate.parse({ systemIdentifier: r.rows[0]!.sysid, database: r.rows[0]!.db });
}

async function checkEstate(pool: pg.Pool, want: Estate): Promise<void> {
  const have = await readEstate(pool);
  if (have.systemIdentifier !== want.systemIdentifier || have.database !== want.database) {
    throw bad(`this packet worker is connected to ${have.database} (system ${have.systemIdentifier}), the workflow belongs to ${want.database} (system ${want.systemIdentifier}): refused`);
  }
}

/**
 * Another packet tree is SQL run as the estate's admin: accepted only inside the project (a tree the
 * repository itself ships, e.g. bench/'s) or under NODE_ENV=test (a test's broken copy).
 */
export function checkedStepsRoot(raw: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (raw === undefined) return undefined;
  let real: string;
  try {
    real = fs.realpathSync(raw);
  } catch {
    throw bad(`stepsRoot ${raw} does not exist`);
  }
  const root = fs.realpathSync(projectRoot);
  const inside = real === root || real.startsWith(`${root}${path.sep}`);
  if (!inside && env.NODE_ENV !== 'test') {
    throw bad(`stepsRoot ${raw} is outside the project (${root}): another packet tree runs as the estate's admin, so only one the repository ships is accepted`);
  }
  return real;
}

function packetSteps(root: string | undefined): PacketStep[] {
  try {
    return discoverSteps(root);
  } catch (err) {
    throw bad(messageOf(err));
  }
}

const stepInfo = (s: PacketStep): StepInfo => ({
  step: s.step, title: s.meta.title, oneWay: s.meta.oneWay, requiresApproval: s.meta.requiresApproval,
  selfUndoing: s.meta.selfUndoing, concurrently: s.meta.concurrently,
});

const stepView = (s: PacketStep, o: StepOutcome): StepView => ({ step: o.step, title: s.meta.title, action: o.action, attempts: o.attempts, ms: Math.round(o.ms), detail: o.detail.slice(0, 2000) });

/** Heartbeat every `ms` while `fn` runs, and on every packet event (the last one is the heartbeat's detail). */
async function beating<T>(ms: number, fn: (onEvent: (e: PacketEvent) => void) => Promise<T>): Promise<T> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined; // called outside an activity (a unit test): nothing to heartbeat
  }
  let last: Record<string, unknown> = {};
  const timer = ctx ? setInterval(() => ctx.heartbeat(last), ms) : undefined;
  try {
    return await fn((e) => {
      last = e.type === 'step' ? { step: e.step, phase: e.phase, action: e.action } : e.type === 'attempt' ? { step: e.step, attempt: e.attempt, sqlstate: e.sqlstate } : { event: e.type };
      ctx?.heartbeat(last);
    });
  } finally {
    clearInterval(timer);
  }
}

/** Under the packet lock (with the lease rule), as one activity; whatever it throws leaves as a packet failure. */
async function locked<T>(pool: pg.Pool, purpose: string, lease: LeaseRule, fn: (current: PacketLease | undefined) => Promise<T>): Promise<T> {
  try {
    const lock = await acquirePacketLock(pool, purpose, { lease });
    try {
      return await fn(lock.lease);
    } finally {
      await lock.release();
    }
  } catch (err) {
    throw toPacketFailure(err, purpose);
  }
}

/**
 * A busy lock or lease as a final refusal (the first activity: a packet that is not ours to wait for).
 * Except on a retry: an earlier attempt of this very activity that timed out may still hold the lock
 * (seen on a loaded machine: attempt 2 refused by attempt 1), so a retry stays retryable for a while.
 */
const OWN_ATTEMPT_GRACE = 5;
async function finalBusy<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    const attempt = (() => { try { return Context.current().info.attempt; } catch { return 1; } })();
    if (err instanceof ApplicationFailure && err.type === PacketFailure.Busy && !err.nonRetryable && attempt < OWN_ATTEMPT_GRACE) {
      if (attempt > 1) throw err;
    }
    if (err instanceof ApplicationFailure && err.type === PacketFailure.Busy && !err.nonRetryable) {
      throw ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: true, details: err.details as unknown[] });
    }
    throw err;
  }
}

/** Whether the workflow run that holds `lease` is closed, by Temporal's word; undefined while it runs. */
async function holderClosed(lease: PacketLease): Promise<string | undefined> {
  try {
    const d = await Context.current().client.workflow.getHandle(lease.workflowId, lease.workflowRun).describe();
    return d.status.name === 'RUNNING' ? undefined : `its workflow run ended ${d.status.name}`;
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return 'its workflow run no longer exists';
    throw err;
  }
}

export function createPacketActivities(deps: PacketActivityDeps) {
  const { pool } = deps;
  const beat = deps.heartbeatMs ?? 1_000;

  return {
    /**
     * Take the lease (or find it ours: a retry), open or reuse the ledger run, and for an apply take the
     * backup and run the entry drift check. Nothing is applied here: a refusal comes back as `refusal`.
     */
    async beginPacketRun(raw: BeginRunInput): Promise<BeginRunResult> {
      const i = parse(BeginRunInput, raw, 'beginPacketRun');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      const root = checkedStepsRoot(i.stepsRoot);
      const steps = packetSteps(root);
      const lastStep = steps.at(-1)?.step;
      if (lastStep === undefined) throw bad('the apply packet has no steps');
      if (i.kind === 'apply' && i.target !== null && !steps.some((s) => s.step === i.target)) {
        throw bad(`--through ${i.target}: the packet has steps ${steps.map((s) => s.step).join(', ')}`);
      }
      if (i.kind === 'rollback' && (i.target ?? 0) > lastStep) throw bad(`--to ${i.target}: the packet's last step is ${lastStep}`);

      // Busy here is final: another applier or workflow owns the packet, and the caller is told at once.
      return finalBusy(locked(pool, `the packet ${i.kind} workflow ${i.holder.workflowId}`, 'inspect', async (lease) => {
        await ensureLedger(pool);
        let cleared: string | null = null;
        if (lease && !sameHolder(lease, i.holder)) {
          const closed = await holderClosed(lease);
          if (!closed) {
            throw new PacketError(PacketFailure.Busy,
              `the packet workflow ${lease.workflowId} (run ${lease.workflowRun}) holds the packet lease for its ${lease.kind} since ${lease.acquiredAt}: finish it first (birthgate apply / approve / packet stop)`);
          }
          await clearLease(pool, lease, `${closed}; cleared by ${i.holder.workflowId} (run ${i.holder.workflowRun})`);
          cleared = `${lease.workflowId} (run ${lease.workflowRun}): ${closed}`;
        }
        const mine = await takeLease(pool, i.holder, i.kind);
        if (!sameHolder(mine, i.holder)) throw new PacketError(PacketFailure.Busy, `the packet lease went to workflow ${mine.workflowId} meanwhile`);

        // A retried first activity reuses the run it opened: one ledger run per workflow run.
        let ledgerRunId = mine.ledgerRunId;
        const recorded = await lastRecordedState(pool);
        const live = await guardedFingerprint(pool);
        let entry = live;
        let doneBackup: string | null = null;
        if (ledgerRunId) ({ entry, backupDir: doneBackup } = await runEntry(pool, ledgerRunId));
        else {
          ledgerRunId = await startRun(pool, { kind: i.kind, targetStep: i.target ?? (i.kind === 'apply' ? lastStep : 0), entry });
          await setLeaseRun(pool, i.holder, ledgerRunId);
        }
        const base = {
          ledgerRunId, entryHash: fingerprintHash(entry), entryGovernedHash: governedHash(entry), steps: steps.map(stepInfo),
          door: oneWayDoor(steps) ?? null, lastStep, cleared,
        };
        const drift = await checkEntry(pool, steps, { current: live, recorded, expectGovernedHash: i.expectGovernedHash });
        if (i.kind === 'rollback') return { ...base, appliedThrough: drift.appliedThrough, backup: null, refusal: null };

        const refusal = (code: PacketFailure, message: string): BeginRunResult => ({
          ...base, appliedThrough: drift.appliedThrough, backup: null, refusal: { code, message, step: null, sqlstate: null, runId: ledgerRunId },
        });
        // KB-7D57 "Backup commands (run first)".
        let backup: BeginRunResult['backup'];
        try {
          const b = await takeBackup(pool, { dir: doneBackup ?? (await backupDir(pool, deps.reportDir, ledgerRunId)), databaseUrl: deps.databaseUrl });
          await setRunBackup(pool, ledgerRunId, b.dir);
          backup = { dir: b.dir, files: b.files.length, pgDump: b.pgDump.detail };
        } catch (err) {
          return refusal(PacketFailure.BadRequest, `backup failed, nothing applied: ${messageOf(err)}`);
        }
        if (!drift.ok) {
          const failed = drift.checks.filter((c) => !c.ok);
          return { ...refusal(PacketFailure.EntryDrift, `entry drift, nothing applied: ${failed.map((c) => `${c.check} — ${c.detail}`).join('; ')}`), backup };
        }
        return { ...base, appliedThrough: drift.appliedThrough, backup, refusal: null };
      }));
    },

    /** One step's up (skipped when its verify holds), under the lock and the workflow's lease. */
    async applyPacketStep(raw: StepInput): Promise<StepRunResult> {
      const i = parse(StepInput, raw, 'applyPacketStep');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      const steps = packetSteps(checkedStepsRoot(i.stepsRoot));
      const s = findStepOr(steps, i.step);
      return locked(pool, `step ${i.step}`, i.holder, () =>
        beating(beat, async (onEvent) => {
          const out = await applyStep(pool, s, {
            runId: i.ledgerRunId, lockHeld: true, owner: i.owner, approvalId: i.approvalId, steps, rerunSelfUndoing: i.rerunSelfUndoing, expectLiveMd5: i.expectLiveMd5, onEvent,
          });
          return { ...stepView(s, out), governedHash: governedHash(out.exit) };
        }));
    },

    /** One step's down (skipped when there is nothing to undo); a rollback retries its DDL at least 6 times. */
    async rollbackPacketStep(raw: StepInput): Promise<StepView> {
      const i = parse(StepInput, raw, 'rollbackPacketStep');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      const steps = packetSteps(checkedStepsRoot(i.stepsRoot));
      const s = findStepOr(steps, i.step);
      const ddl = DdlOptionsSchema.parse({ maxAttempts: MIN_ROLLBACK_ATTEMPTS });
      return locked(pool, `the rollback of step ${i.step}`, i.holder, () =>
        beating(beat, async (onEvent) => stepView(s, await rollbackStep(pool, s, { runId: i.ledgerRunId, lockHeld: true, steps, ddl, onEvent }))));
    },

    /**
     * `rollback --to N`'s plan and every planned down's precheck, before the first down (issue 7 item 7).
     * A refusal writes its ledger rows and fails BG428, naming each step; returns the planned steps.
     */
    async planPacketRollback(raw: PlanRollbackInput): Promise<number[]> {
      const i = parse(PlanRollbackInput, raw, 'planPacketRollback');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      const steps = packetSteps(checkedStepsRoot(i.stepsRoot));
      return locked(pool, `the rollback plan to step ${i.to}`, i.holder, async () => {
        const ddl = DdlOptionsSchema.parse({ maxAttempts: MIN_ROLLBACK_ATTEMPTS });
        const plan = await rollbackPlan(pool, steps, i.to);
        const refusals = await precheckPlan(pool, plan, ddl);
        if (refusals.length) {
          const { entry } = await runEntry(pool, i.ledgerRunId);
          throw await refuseRollback(pool, i.ledgerRunId, i.to, plan, refusals, entry);
        }
        return plan.map((s) => s.step);
      });
    },

    /** Entry vs now, row counts aside (packet/apply.ts prove): the automatic rollback's proof. */
    async provePacketRun(raw: z.input<typeof ProveInput>): Promise<ProofView> {
      const i = parse(ProveInput, raw, 'provePacketRun');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      return locked(pool, 'the rollback proof', i.holder, async () => {
        const { entry } = await runEntry(pool, i.ledgerRunId);
        const p = prove(entry, await guardedFingerprint(pool));
        return { equal: p.equal, entryHash: p.entryHash, exitHash: p.exitHash, diff: p.diff.map((d) => d.path).slice(0, 50) };
      });
    },

    /** The governed hash as it is now: the door's state, re-read when the owner's approval arrives. */
    async packetGovernedHash(raw: z.input<typeof ProveInput>): Promise<string> {
      const i = parse(ProveInput, raw, 'packetGovernedHash');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      return locked(pool, 'the door check', i.holder, async () => governedHash(await guardedFingerprint(pool)));
    },

    /**
     * Close the ledger run with its exit fingerprint and release the lease (both idempotent). An
     * applied run may grant birthgate_worker; a rollback to 0 drops its grants, as the direct runner does.
     */
    async endPacketRun(raw: EndRunInput): Promise<{ exitHash: string; governedHash: string; workerRole: boolean; released: boolean }> {
      const i = parse(EndRunInput, raw, 'endPacketRun');
      await checkEstate(pool, i.estate).catch((err) => { throw toPacketFailure(err, 'the estate check'); });
      return locked(pool, `the end of ${i.holder.workflowId}`, 'inspect', async (lease) => {
        const mine = lease !== undefined && sameHolder(lease, i.holder);
        const ledgerRunId = i.ledgerRunId ?? (mine ? lease.ledgerRunId : null);
        let workerRole = false;
        if (mine && i.status === 'applied' && i.grantWorker && deps.workerPassword && (i.appliedSteps > 0 || !(await workerGranted(pool)))) {
          await installWorkerRole(pool, deps.workerPassword);
          workerRole = true;
        }
        if (mine && i.status === 'rolled_back' && i.dropWorker) await dropWorkerRole(pool, { maxAttempts: MIN_ROLLBACK_ATTEMPTS });
        const exit = await guardedFingerprint(pool);
        if (ledgerRunId) await finishRun(pool, ledgerRunId, { status: i.status, exit, errorCode: i.errorCode, error: i.error });
        const released = mine ? await releaseLease(pool, i.holder, `${i.status}${i.error ? `: ${i.error.slice(0, 500)}` : ''}`) : false;
        return { exitHash: fingerprintHash(exit), governedHash: governedHash(exit), workerRole, released };
      });
    },
  };
}

/** Whether birthgate_worker exists and holds its grants in this database (EXECUTE on step 1's fn_permit_issue). */
async function workerGranted(pool: pg.Pool): Promise<boolean> {
  const r = await pool.query<{ ok: boolean }>(
    `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'birthgate_worker') THEN false
                 WHEN to_regprocedure('public.fn_permit_issue(text,text,text,integer,text,text,text)') IS NULL THEN false
                 ELSE has_function_privilege('birthgate_worker', to_regprocedure('public.fn_permit_issue(text,text,text,integer,text,text,text)'), 'EXECUTE') END AS ok`,
  );
  return r.rows[0]?.ok === true;
}

function findStepOr(steps: PacketStep[], n: number): PacketStep {
  try {
    return findStep(steps, n);
  } catch (err) {
    throw bad(messageOf(err));
  }
}

export type PacketActivities = ReturnType<typeof createPacketActivities>;
