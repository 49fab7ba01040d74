// One step, applied or rolled back, recorded in the ledger. These are the units a Temporal activity
// calls (issue 3: "so the next issue can call each step as a Temporal activity"): pure functions
// over a pool, every input in the arguments, idempotent (verify.sql decides whether there is work).
import type pg from 'pg';
import { z } from 'zod';
import { DdlFailure, DdlOptionsSchema, runDdl, type DdlOptions } from './ddl.ts';
import { PacketError, PacketFailure, messageOf, sqlstateOf } from './errors.ts';
import type { OnEvent, StepAction } from './events.ts';
import { guardedFingerprint, fingerprintHash, type Fingerprint } from './fingerprint.ts';
import { ensureLedger, finishRun, finishStepRow, recordAttempt, startRun, startStepRow } from './ledger.ts';
import { acquirePacketLock } from './lock.ts';
import { discoverSteps, findStep, type PacketStep } from './steps.ts';
import { notEnabledAlways } from './triggers.ts';
import { verifyStepSql, type VerifyResult } from './verify.ts';

const Name = z.string().trim().min(1).max(200).refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters');
/** KB-7D57 owner-approval checklist: who approved, and the approval's id. */
export const ApprovalSchema = z.object({ owner: Name, approvalId: Name });
export type Approval = z.infer<typeof ApprovalSchema>;

export type StepRunOptions = {
  /** Ledger run to record into; without it the step records its own run (kind 'step'). */
  runId?: string;
  owner?: string;
  approvalId?: string;
  ddl?: Partial<DdlOptions>;
  onEvent?: OnEvent;
  /** The caller holds the packet advisory lock (applyPacket does); else the step takes it. */
  lockHeld?: boolean;
  steps?: PacketStep[];
  /**
   * Re-run a self-undoing step (step 6's smoke test) although its verify holds. Right only while the
   * packet is not past it: after step 11 the gate refuses the smoke test's permit-less insert.
   */
  rerunSelfUndoing?: boolean;
  /** Fingerprint before the step, when the caller already has it (saves one read). */
  entry?: Fingerprint;
  random?: () => number;
};

export type StepOutcome = { step: number; action: StepAction; attempts: number; ms: number; detail: string; exit: Fingerprint };

/** The GUCs the step-7 up.sql reads (sql/apply/07-drop-single-unique): the approval, announced to its transaction. */
function approvalSettings(a: Approval): Record<string, string> {
  return { 'birthgate.approval_owner': a.owner, 'birthgate.approval_id': a.approvalId };
}

export async function verifyStep(pool: Pick<pg.Pool, 'query'>, step: number | PacketStep, steps?: PacketStep[]): Promise<VerifyResult> {
  const s = typeof step === 'number' ? findStep(steps ?? discoverSteps(), step) : step;
  return verifyStepSql(pool, s);
}

async function standalone<T>(pool: pg.Pool, kind: 'step', target: number, opts: StepRunOptions, fn: (runId: string) => Promise<T>): Promise<T> {
  if (opts.runId) return fn(opts.runId);
  const lock = opts.lockHeld ? undefined : await acquirePacketLock(pool, `step ${target}`);
  try {
    await ensureLedger(pool);
    const runId = await startRun(pool, { kind, targetStep: target, owner: opts.owner, approvalId: opts.approvalId });
    opts.onEvent?.({ type: 'run', runId, kind, target });
    try {
      const out = await fn(runId);
      await finishRun(pool, runId, { status: 'applied' });
      return out;
    } catch (err) {
      const code = err instanceof PacketError ? err.code : PacketFailure.StepFailed;
      // The state a failed step leaves (e.g. an INVALID index that could not be dropped yet) is
      // recorded too, so the next run's drift check compares against what is really there.
      const exit = await guardedFingerprint(pool).catch(() => undefined);
      await finishRun(pool, runId, { status: code === PacketFailure.Precondition ? 'refused' : 'failed', exit, errorCode: code, error: messageOf(err) });
      throw err;
    }
  } finally {
    await lock?.release();
  }
}

async function execute(
  pool: pg.Pool,
  s: PacketStep,
  file: 'up' | 'down',
  rowId: string,
  ddl: DdlOptions,
  opts: StepRunOptions,
  settings?: Record<string, string>,
): Promise<number> {
  return runDdl(pool, s[file], s.meta.concurrently, ddl, {
    settings,
    random: opts.random,
    onNotice: (message) => opts.onEvent?.({ type: 'notice', step: s.step, message }),
    onLeftoverDropped: (index) => opts.onEvent?.({ type: 'leftover', step: s.step, index }),
    onAttempt: async (a) => {
      await recordAttempt(pool, rowId, { attempt: a.attempt, sqlstate: a.sqlstate, message: a.message, durationMs: a.durationMs, backoffMs: a.backoffMs });
      opts.onEvent?.({ type: 'attempt', step: s.step, attempt: a.attempt, ok: a.ok, sqlstate: a.sqlstate, message: a.message, backoffMs: a.backoffMs, ms: a.durationMs });
    },
  });
}

function failure(err: unknown, s: PacketStep, runId: string, what: string): PacketError {
  if (err instanceof PacketError) return err;
  const sqlstate = err instanceof DdlFailure ? err.sqlstate : sqlstateOf(err);
  // CONTRACT.md BG428: the SQL itself refuses (step 7 without approval, its rollback after a cross-collection birth).
  const code = sqlstate === 'BG428' ? PacketFailure.Precondition : PacketFailure.StepFailed;
  const cause = err instanceof DdlFailure ? err.cause : err;
  return new PacketError(code, `step ${s.step} (${s.meta.title}) ${what}: ${messageOf(err)}`, { runId, step: s.step, sqlstate, cause });
}

/** The step's progress events, timed from `started`. */
function stepEmitter(s: PacketStep, opts: StepRunOptions, started: number) {
  return (phase: 'start' | 'skip' | 'done' | 'refused' | 'failed', action: StepAction, detail?: string, attempts?: number) =>
    opts.onEvent?.({ type: 'step', step: s.step, title: s.meta.title, phase, action, detail, attempts, ms: performance.now() - started });
}

/** Apply one step: skipped when its verify already holds (not for self-undoing steps), else up.sql + verify. */
export async function applyStep(pool: pg.Pool, step: number | PacketStep, opts: StepRunOptions = {}): Promise<StepOutcome> {
  const s = typeof step === 'number' ? findStep(opts.steps ?? discoverSteps(), step) : step;
  const ddl = DdlOptionsSchema.parse(opts.ddl ?? {});
  return standalone(pool, 'step', s.step, opts, async (runId) => {
    const started = performance.now();
    const emit = stepEmitter(s, opts, started);
    const entryHash = opts.entry ? fingerprintHash(opts.entry) : undefined;

    const before = await verifyStepSql(pool, s);
    if (before.ok && !(s.meta.selfUndoing && (opts.rerunSelfUndoing ?? true))) {
      const exit = opts.entry ?? (await guardedFingerprint(pool));
      const rowId = await startStepRow(pool, { runId, step: s.step, action: 'skip', entryHash: fingerprintHash(exit) });
      const detail = `already applied, skipped: ${before.detail}`;
      await finishStepRow(pool, rowId, { status: 'ok', detail, exit });
      emit('skip', 'skip', detail);
      return { step: s.step, action: 'skip', attempts: 0, ms: performance.now() - started, detail, exit };
    }

    let settings: Record<string, string> | undefined;
    if (s.meta.requiresApproval) {
      const approval = ApprovalSchema.safeParse({ owner: opts.owner, approvalId: opts.approvalId });
      if (!approval.success) {
        const rowId = await startStepRow(pool, { runId, step: s.step, action: 'up', owner: opts.owner, approvalId: opts.approvalId, entryHash });
        const detail = `step ${s.step} (${s.meta.title}) is a one-way door and needs an owner approval: pass owner and approval id (birthgate apply --owner NAME --approval ID)`;
        await finishStepRow(pool, rowId, { status: 'refused', detail, sqlstate: 'BG428' });
        emit('refused', 'up', detail);
        throw new PacketError(PacketFailure.Precondition, detail, { runId, step: s.step, sqlstate: 'BG428' });
      }
      settings = approvalSettings(approval.data);
    }

    // The approval (if any) is in the ledger before the one-way statement runs.
    const rowId = await startStepRow(pool, { runId, step: s.step, action: 'up', owner: settings && opts.owner, approvalId: settings && opts.approvalId, entryHash });
    emit('start', 'up');
    let attempts = 0;
    try {
      attempts = await execute(pool, s, 'up', rowId, ddl, opts, settings);
      const after = await verifyStepSql(pool, s);
      if (!after.ok) throw new PacketError(PacketFailure.StepFailed, `step ${s.step} (${s.meta.title}) ran but its verify does not hold: ${after.detail}`, { runId, step: s.step });
      const loose = await notEnabledAlways(pool);
      if (loose.length) {
        throw new PacketError(PacketFailure.StepFailed,
          `step ${s.step}: governed trigger(s) not ENABLE ALWAYS: ${loose.map((t) => `${t.table}.${t.trigger}=${t.enabled}`).join(', ')} (DESIGN §3)`,
          { runId, step: s.step });
      }
      const exit = await guardedFingerprint(pool);
      await finishStepRow(pool, rowId, { status: 'ok', attempts, detail: after.detail, exit });
      emit('done', 'up', after.detail, attempts);
      return { step: s.step, action: 'up', attempts, ms: performance.now() - started, detail: after.detail, exit };
    } catch (err) {
      const e = failure(err, s, runId, 'failed');
      await finishStepRow(pool, rowId, { status: e.code === PacketFailure.Precondition ? 'refused' : 'failed', attempts: (err as DdlFailure).attempts ?? attempts, detail: e.message, sqlstate: e.sqlstate });
      emit(e.code === PacketFailure.Precondition ? 'refused' : 'failed', 'up', e.message);
      throw e;
    }
  });
}

/**
 * Roll one step back with its down.sql: skipped when its verify says it is not applied (a
 * CONCURRENTLY step is always run: an INVALID leftover does not verify but still must go).
 */
export async function rollbackStep(pool: pg.Pool, step: number | PacketStep, opts: StepRunOptions = {}): Promise<StepOutcome> {
  const s = typeof step === 'number' ? findStep(opts.steps ?? discoverSteps(), step) : step;
  const ddl = DdlOptionsSchema.parse(opts.ddl ?? {});
  return standalone(pool, 'step', s.step, opts, async (runId) => {
    const started = performance.now();
    const emit = stepEmitter(s, opts, started);
    const before = await verifyStepSql(pool, s);
    if (s.meta.selfUndoing || (!before.ok && !s.meta.concurrently)) {
      const exit = opts.entry ?? (await guardedFingerprint(pool));
      const rowId = await startStepRow(pool, { runId, step: s.step, action: 'skip', entryHash: fingerprintHash(exit) });
      const detail = s.meta.selfUndoing ? 'self-undoing step: nothing to roll back' : `not applied, skipped: ${before.detail}`;
      await finishStepRow(pool, rowId, { status: 'ok', detail, exit });
      emit('skip', 'skip', detail);
      return { step: s.step, action: 'skip', attempts: 0, ms: performance.now() - started, detail, exit };
    }
    const rowId = await startStepRow(pool, { runId, step: s.step, action: 'down', entryHash: opts.entry ? fingerprintHash(opts.entry) : undefined });
    emit('start', 'down');
    let attempts = 0;
    try {
      attempts = await execute(pool, s, 'down', rowId, ddl, opts);
      const after = await verifyStepSql(pool, s);
      if (after.ok) throw new PacketError(PacketFailure.StepFailed, `step ${s.step} rolled back but its verify still holds: ${after.detail}`, { runId, step: s.step });
      const exit = await guardedFingerprint(pool);
      const detail = `rolled back (${after.detail})`;
      await finishStepRow(pool, rowId, { status: 'ok', attempts, detail, exit });
      emit('done', 'down', detail, attempts);
      return { step: s.step, action: 'down', attempts, ms: performance.now() - started, detail, exit };
    } catch (err) {
      const e = failure(err, s, runId, 'rollback failed');
      await finishStepRow(pool, rowId, { status: e.code === PacketFailure.Precondition ? 'refused' : 'failed', attempts: (err as DdlFailure).attempts ?? attempts, detail: e.message, sqlstate: e.sqlstate });
      emit(e.code === PacketFailure.Precondition ? 'refused' : 'failed', 'down', e.message);
      throw e;
    }
  });
}
