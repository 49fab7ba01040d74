// applyPacket / rollbackPacket: KB-7D57 in strict order under one advisory lock, backup first, entry
// drift check, every step idempotent and in the ledger. Failure handling follows the packet's one-way
// door (KB-3A66 §5, KB-7D57 "Steps 1–6 fully reversible … Step 7 is the first irreversible-once-used
// door"): before the door, what this run applied is rolled back in reverse and the catalog is proven
// back at the run's entry fingerprint; at or past the door nothing is rolled back automatically — the
// run stops and says where it stands.
//
// The packet as a Temporal workflow (workflows/apply-packet.ts, activities/packet.ts) reuses the
// pieces exported here — the backup's directory, the rollback plan and its prechecks, the refusal, the
// proof — so the CLI's direct path and the workflow decide the same way.
import path from 'node:path';
import type pg from 'pg';
import { z } from 'zod';
import { projectRoot } from '../config/index.ts';
import { takeBackup, type BackupResult } from './backup.ts';
import { DdlOptionsSchema, type DdlOptions } from './ddl.ts';
import { catalogPart, checkEntry, governedHash, type DriftReport } from './drift.ts';
import { PacketError, PacketFailure, messageOf } from './errors.ts';
import type { OnEvent } from './events.ts';
import { guardedFingerprint, diffFingerprints, fingerprintHash, type Fingerprint, type FingerprintDiff } from './fingerprint.ts';
import { ensureLedger, finishRun, finishStepRow, lastRecordedState, setRunBackup, startRun, startStepRow } from './ledger.ts';
import { acquirePacketLock } from './lock.ts';
import { dropWorkerRole, installWorkerRole, WorkerPassword } from './roles.ts';
import { runDownPrecheck, type PrecheckResult } from './precheck.ts';
import { applyStep, downNeeded, rollbackStep, type StepOutcome, type StepRunOptions } from './step-runner.ts';
import { discoverSteps, oneWayDoor, type PacketStep } from './steps.ts';
import { verifyStepSql } from './verify.ts';

/** Where backups go when the caller names no directory (the CLI passes <BIRTHGATE_HOME>/reports). */
export const defaultReportRoot = path.join(projectRoot, '.birthgate', 'reports');

const Common = z.object({
  ddl: DdlOptionsSchema.partial().optional(),
  /** Another packet root (tests inject steps); default sql/apply. */
  stepsRoot: z.string().min(1).optional(),
});

export const ApplyOptionsSchema = Common.extend({
  through: z.number().int().min(1).max(99).optional(),
  owner: z.string().optional(),
  approvalId: z.string().optional(),
  /** Base directory of the backup files; the run writes into `<reportDir>/<database>-apply-run-<id>/`. */
  reportDir: z.string().min(1).optional(),
  /** For pg_dump; default the pool's connection string. */
  databaseUrl: z.string().optional(),
  /** The governed hash a rehearsal reported: the live state must be exactly what was rehearsed. */
  expectGovernedHash: z.string().regex(/^[0-9a-f]{64}$/, 'a governed hash is 64 hex digits').optional(),
  /** Create/refresh birthgate_worker after the steps, with this password. */
  workerPassword: WorkerPassword.optional(),
});
export type ApplyOptions = z.input<typeof ApplyOptionsSchema> & { onEvent?: OnEvent; random?: () => number };

export const RollbackOptionsSchema = Common.extend({ to: z.number().int().min(0).max(99) });
export type RollbackOptions = z.input<typeof RollbackOptionsSchema> & { onEvent?: OnEvent; random?: () => number };

export type StepSummary = Omit<StepOutcome, 'exit'>;
const summary = ({ exit: _exit, ...rest }: StepOutcome): StepSummary => rest;

export type Proof = { equal: boolean; entryHash: string; exitHash: string; diff: FingerprintDiff[] };

export type ApplyResult = {
  runId: string;
  status: 'applied';
  through: number;
  steps: StepSummary[];
  entryHash: string;
  exitHash: string;
  governedHash: string;
  backup: Pick<BackupResult, 'dir' | 'files' | 'pgDump'>;
  drift: DriftReport;
  workerRole: boolean;
};

export type RollbackResult = {
  runId: string;
  status: 'rolled_back';
  to: number;
  steps: StepSummary[];
  entryHash: string;
  exitHash: string;
};

/** Entry vs exit, row counts left out (live traffic moves them; they are not schema). */
export function prove(entry: Fingerprint, exit: Fingerprint): Proof {
  const a = catalogPart(entry);
  const b = catalogPart(exit);
  const entryHash = fingerprintHash(a);
  const exitHash = fingerprintHash(b);
  return { equal: entryHash === exitHash, entryHash, exitHash, diff: entryHash === exitHash ? [] : diffFingerprints(a, b) };
}

function parse<T extends z.ZodTypeAny>(schema: T, value: unknown): z.output<T> {
  const r = schema.safeParse(value);
  if (!r.success) throw new PacketError(PacketFailure.BadRequest, r.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; '));
  return r.data;
}

function lastStep(steps: PacketStep[]): number {
  const last = steps.at(-1);
  if (!last) throw new PacketError(PacketFailure.BadRequest, 'the apply packet has no steps');
  return last.step;
}

/** A rollback tries harder than the apply: giving up half way leaves the catalog between states. */
export const MIN_ROLLBACK_ATTEMPTS = 6;

/** Roll back, in reverse, the steps this run applied (plus a failed CONCURRENTLY step's leftovers). */
export async function autoRollback(pool: pg.Pool, toUndo: PacketStep[], base: StepRunOptions): Promise<StepOutcome[]> {
  const ddl = { ...base.ddl, maxAttempts: Math.max(base.ddl?.maxAttempts ?? MIN_ROLLBACK_ATTEMPTS, MIN_ROLLBACK_ATTEMPTS) };
  const out: StepOutcome[] = [];
  for (const s of [...toUndo].reverse()) out.push(await rollbackStep(pool, s, { ...base, ddl }));
  return out;
}

export async function applyPacket(pool: pg.Pool, options: ApplyOptions = {}): Promise<ApplyResult> {
  const o = parse(ApplyOptionsSchema, options);
  const steps = discoverSteps(o.stepsRoot);
  const through = o.through ?? lastStep(steps);
  if (!steps.some((s) => s.step === through)) throw new PacketError(PacketFailure.BadRequest, `--through ${through}: the packet has steps ${steps.map((s) => s.step).join(', ')}`);
  if ((o.owner === undefined) !== (o.approvalId === undefined)) {
    throw new PacketError(PacketFailure.BadRequest, 'an approval is an owner AND an approval id: pass both or neither');
  }
  const emit = options.onEvent ?? (() => undefined);

  const lock = await acquirePacketLock(pool, 'apply');
  try {
    await ensureLedger(pool);
    const recorded = await lastRecordedState(pool);
    const entry = await guardedFingerprint(pool);
    const runId = await startRun(pool, { kind: 'apply', targetStep: through, owner: o.owner, approvalId: o.approvalId, entry });
    emit({ type: 'run', runId, kind: 'apply', target: through });
    let ended = false;
    const end = async (status: 'refused' | 'failed' | 'stopped' | 'rolled_back', err: PacketError, exit?: Fingerprint) => {
      ended = true;
      await finishRun(pool, runId, { status, exit: exit ?? (await guardedFingerprint(pool).catch(() => undefined)), errorCode: err.code, error: err.message });
      return err;
    };
    try {
      return await applyRun(pool, o, steps, through, { runId, entry, recorded, end, emit, options });
    } catch (err) {
      // Anything unforeseen (a lost connection, a catalog read failing) still closes the run row.
      if (!ended) await end('failed', err instanceof PacketError ? err : new PacketError(PacketFailure.StepFailed, messageOf(err), { runId, cause: err })).catch(() => undefined);
      throw err;
    }
  } finally {
    await lock.release();
  }
}

type RunContext = {
  runId: string;
  entry: Fingerprint;
  recorded: Awaited<ReturnType<typeof lastRecordedState>>;
  end: (status: 'refused' | 'failed' | 'stopped' | 'rolled_back', err: PacketError, exit?: Fingerprint) => Promise<PacketError>;
  emit: OnEvent;
  options: ApplyOptions;
};

/** The body of an apply run, once the lock is held and the run row exists. */
async function applyRun(pool: pg.Pool, o: z.output<typeof ApplyOptionsSchema>, steps: PacketStep[], through: number, ctx: RunContext): Promise<ApplyResult> {
  const { runId, entry, recorded, end, emit, options } = ctx;
  // KB-7D57 "Backup commands (run first)".
  let backup: BackupResult;
  try {
    backup = await takeBackup(pool, { dir: await backupDir(pool, o.reportDir, runId), databaseUrl: o.databaseUrl });
  } catch (err) {
    throw await end('refused', new PacketError(PacketFailure.BadRequest, `backup failed, nothing applied: ${messageOf(err)}`, { runId, cause: err }));
  }
  await setRunBackup(pool, runId, backup.dir);
  emit({ type: 'backup', dir: backup.dir, files: backup.files, pgDump: backup.pgDump });

  const drift = await checkEntry(pool, steps, { current: entry, recorded, expectGovernedHash: o.expectGovernedHash });
  emit({ type: 'drift', ok: drift.ok, appliedThrough: drift.appliedThrough, checks: drift.checks });
  if (!drift.ok) {
    const failed = drift.checks.filter((c) => !c.ok);
    throw await end('refused', new PacketError(PacketFailure.EntryDrift,
      `entry drift, nothing applied: ${failed.map((c) => `${c.check} — ${c.detail}`).join('; ')}`, { runId, detail: drift }), entry);
  }

  const door = oneWayDoor(steps) ?? Number.POSITIVE_INFINITY;
  const base: StepRunOptions = { runId, lockHeld: true, owner: o.owner, approvalId: o.approvalId, ddl: o.ddl, onEvent: options.onEvent, random: options.random, steps };
  const done: StepOutcome[] = [];
  const appliedHere: PacketStep[] = [];
  let current = entry;
  for (const s of steps.filter((x) => x.step <= through)) {
    try {
      const out = await applyStep(pool, s, { ...base, entry: current, rerunSelfUndoing: drift.appliedThrough <= s.step });
      done.push(out);
      current = out.exit;
      if (out.action === 'up' && !s.meta.selfUndoing) appliedHere.push(s);
    } catch (err) {
      const e = err instanceof PacketError ? err : new PacketError(PacketFailure.StepFailed, messageOf(err), { runId, step: s.step, cause: err });
      if (e.code === PacketFailure.Precondition && s.step === door) {
        // KB-7D57: "Stop and get explicit owner sign-off between step 6 and step 7" — the refusal is
        // the designed stop, not a failure: what came before stays applied.
        const msg = `${e.message}; steps before ${s.step} stay applied (${done.map((d) => `${d.step}:${d.action}`).join(' ') || 'none'})`;
        throw await end('refused', new PacketError(PacketFailure.Precondition, msg, { runId, step: s.step, sqlstate: 'BG428', cause: e }), current);
      }
      const pastDoor = s.step >= door || (await Promise.all(steps.filter((x) => x.meta.oneWay).map((x) => verifyStepSql(pool, x)))).some((v) => v.ok);
      if (pastDoor) {
        const reason = `step ${s.step} failed at or past the one-way door (step ${door}): no automatic rollback (KB-3A66 §5); stopped for an operator`;
        emit({ type: 'stopped', reason });
        throw await end('stopped', new PacketError(PacketFailure.StoppedPastOneWay, `${reason}: ${e.message}`, { runId, step: s.step, sqlstate: e.sqlstate, cause: e }));
      }
      // A failed CONCURRENTLY step may have left an index behind: its down (IF EXISTS) goes too.
      const toUndo = s.meta.concurrently ? [...appliedHere, s] : appliedHere;
      emit({ type: 'rollback', reason: e.message, steps: [...toUndo].reverse().map((x) => x.step) });
      let rolled: StepOutcome[];
      try {
        rolled = await autoRollback(pool, toUndo, base);
      } catch (rbErr) {
        throw await end('failed', new PacketError(PacketFailure.RollbackMismatch,
          `step ${s.step} failed (${e.message}) and the automatic rollback failed too: ${messageOf(rbErr)} — the catalog is between states; run \`birthgate rollback\``,
          { runId, step: s.step, cause: rbErr }));
      }
      const exit = rolled.at(-1)?.exit ?? (await guardedFingerprint(pool));
      const proof = prove(entry, exit);
      emit({ type: 'proof', ...proof });
      const detail = { failedStep: s.step, rolledBack: rolled.map(summary), proof };
      if (!proof.equal) {
        throw await end('failed', new PacketError(PacketFailure.RollbackMismatch,
          `step ${s.step} failed and was rolled back, but the catalog differs from the entry fingerprint at ${proof.diff.map((d) => d.path).join(', ')}`,
          { runId, step: s.step, detail, cause: e }), exit);
      }
      throw await end('rolled_back', new PacketError(e.code, `${e.message}; rolled back ${rolled.map((r) => r.step).join(', ') || 'nothing'} — catalog back at the entry fingerprint ${proof.entryHash.slice(0, 12)}…`,
        { runId, step: s.step, sqlstate: e.sqlstate, detail, cause: e }), exit);
    }
  }

  let workerRole = false;
  if (o.workerPassword) {
    await installWorkerRole(pool, o.workerPassword, o.ddl);
    workerRole = true;
  }
  const exit = await guardedFingerprint(pool);
  await finishRun(pool, runId, { status: 'applied', exit });
  return {
    runId,
    status: 'applied',
    through,
    steps: done.map(summary),
    entryHash: fingerprintHash(entry),
    exitHash: fingerprintHash(exit),
    governedHash: governedHash(exit),
    backup: { dir: backup.dir, files: backup.files, pgDump: backup.pgDump },
    drift,
    workerRole,
  };
}

/** Where a run's backup goes: `<reportDir>/<database>-apply-run-<runId>/`. */
export async function backupDir(pool: Pick<pg.Pool, 'query'>, reportDir: string | undefined, runId: string): Promise<string> {
  const db = await pool.query<{ d: string }>('SELECT current_database() AS d');
  return path.join(reportDir ?? defaultReportRoot, `${db.rows[0]!.d}-apply-run-${runId}`);
}

/**
 * The entry drift check on its own (read-only, no lock, nothing recorded): what applyPacket would
 * decide before step 1. A workflow's first activity; also `birthgate apply` minus the apply.
 */
export async function entryCheck(pool: pg.Pool, options: { stepsRoot?: string; expectGovernedHash?: string } = {}): Promise<DriftReport> {
  const steps = discoverSteps(options.stepsRoot);
  return checkEntry(pool, steps, { current: await guardedFingerprint(pool), recorded: await lastRecordedState(pool), expectGovernedHash: options.expectGovernedHash });
}

/** The steps above `to` whose downs a rollback will run, highest first (rollbackStep skips the rest). */
export async function rollbackPlan(pool: pg.Pool, steps: PacketStep[], to: number): Promise<PacketStep[]> {
  const plan: PacketStep[] = [];
  for (const s of steps.filter((x) => x.step > to).reverse()) {
    if (await downNeeded(pool, s, await verifyStepSql(pool, s))) plan.push(s);
  }
  return plan;
}

/**
 * Issue 7 item 7: every planned down's down-precheck.sql, before the first down runs. Each is told
 * the whole plan (birthgate.rollback_steps), so it judges the state its down will meet after the
 * higher downs. Returns the refusals (all of them, so the operator sees every blocker at once).
 */
export async function precheckPlan(pool: pg.Pool, plan: PacketStep[], ddl: DdlOptions): Promise<PrecheckResult[]> {
  const order = plan.map((s) => s.step);
  const refusals: PrecheckResult[] = [];
  for (const s of plan) {
    const r = await runDownPrecheck(pool, s, { ...ddl, plan: order });
    if (r && !r.ok) refusals.push(r);
  }
  return refusals;
}

/** Ledger rows and events for a rollback refused by its prechecks; the error names each step and why. */
export async function refuseRollback(pool: pg.Pool, runId: string, to: number, plan: PacketStep[], refusals: PrecheckResult[], entry: Fingerprint, onEvent?: OnEvent): Promise<PacketError> {
  const titled = refusals.map((r) => ({ ...r, title: plan.find((s) => s.step === r.step)!.meta.title }));
  for (const r of titled) {
    const detail = `down-precheck refuses: ${r.detail}`;
    const rowId = await startStepRow(pool, { runId, step: r.step, action: 'down', entryHash: fingerprintHash(entry) });
    await finishStepRow(pool, rowId, { status: 'refused', detail, sqlstate: 'BG428' });
    onEvent?.({ type: 'step', step: r.step, title: r.title, phase: 'refused', action: 'down', detail });
  }
  const why = titled.map((r) => `step ${r.step} (${r.title}): ${r.detail}`).join('; ');
  const msg = `rollback --to ${to} refused before any down ran, nothing changed: ${why}`;
  const err = new PacketError(PacketFailure.Precondition, msg, { runId, step: titled[0]!.step, sqlstate: 'BG428', detail: { prechecks: refusals, plan: plan.map((s) => s.step) } });
  await finishRun(pool, runId, { status: 'refused', exit: entry, errorCode: err.code, error: msg });
  return err;
}

/**
 * Run the downs of every step above `to`, in reverse; a step that is not applied is skipped. Every
 * planned down's precheck runs first: one refusal refuses the whole rollback before anything moves.
 */
export async function rollbackPacket(pool: pg.Pool, options: RollbackOptions): Promise<RollbackResult> {
  const o = parse(RollbackOptionsSchema, options);
  const steps = discoverSteps(o.stepsRoot);
  if (o.to > lastStep(steps)) throw new PacketError(PacketFailure.BadRequest, `--to ${o.to}: the packet's last step is ${lastStep(steps)}`);
  const lock = await acquirePacketLock(pool, 'rollback');
  try {
    await ensureLedger(pool);
    const entry = await guardedFingerprint(pool);
    const runId = await startRun(pool, { kind: 'rollback', targetStep: o.to, entry });
    options.onEvent?.({ type: 'run', runId, kind: 'rollback', target: o.to });
    const ddl = DdlOptionsSchema.parse({ ...o.ddl, maxAttempts: Math.max(o.ddl?.maxAttempts ?? MIN_ROLLBACK_ATTEMPTS, MIN_ROLLBACK_ATTEMPTS) });
    const plan = await closeOnError(pool, runId, rollbackPlan(pool, steps, o.to));
    const refusals = await closeOnError(pool, runId, precheckPlan(pool, plan, ddl));
    if (refusals.length) throw await refuseRollback(pool, runId, o.to, plan, refusals, entry, options.onEvent);

    const base: StepRunOptions = { runId, lockHeld: true, ddl, onEvent: options.onEvent, random: options.random, steps };
    const done: StepOutcome[] = [];
    let current = entry;
    for (const s of steps.filter((x) => x.step > o.to).reverse()) {
      try {
        const out = await rollbackStep(pool, s, { ...base, entry: current });
        done.push(out);
        current = out.exit;
      } catch (err) {
        const e = err instanceof PacketError ? err : new PacketError(PacketFailure.StepFailed, messageOf(err), { runId, step: s.step, cause: err });
        const status = e.code === PacketFailure.Precondition ? 'refused' : 'failed';
        await finishRun(pool, runId, { status, exit: await guardedFingerprint(pool), errorCode: e.code, error: e.message });
        throw new PacketError(e.code, `${e.message}; rolled back so far: ${done.filter((d) => d.action === 'down').map((d) => d.step).join(', ') || 'nothing'}`,
          { runId, step: s.step, sqlstate: e.sqlstate, cause: e });
      }
    }
    if (o.to === 0) {
      // The entry state has no admission worker: its grants in this database go with the packet (the
      // role itself is dropped only when no other database still uses it).
      await dropWorkerRole(pool, ddl);
      current = await guardedFingerprint(pool);
    }
    await finishRun(pool, runId, { status: 'rolled_back', exit: current });
    return { runId, status: 'rolled_back', to: o.to, steps: done.map(summary), entryHash: fingerprintHash(entry), exitHash: fingerprintHash(current) };
  } finally {
    await lock.release();
  }
}

/** A planning read that fails (a lost connection, a precheck's lock timeout) still closes the run row; nothing has changed. */
async function closeOnError<T>(pool: pg.Pool, runId: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    const e = err instanceof PacketError ? err : new PacketError(PacketFailure.StepFailed, `rollback planning failed before any down ran, nothing changed: ${messageOf(err)}`, { runId, cause: err });
    await finishRun(pool, runId, { status: 'failed', errorCode: e.code, error: e.message }).catch(() => undefined);
    throw e;
  }
}
