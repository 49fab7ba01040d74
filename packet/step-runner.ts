// One step, applied or rolled back, recorded in the ledger. These are the units a Temporal activity
// calls (issue 3: "so the next issue can call each step as a Temporal activity"): pure functions
// over a pool, every input in the arguments, idempotent (verify.sql decides whether there is work).
import type pg from 'pg';
import { z } from 'zod';
import { concurrentIndexName, DdlFailure, DdlOptionsSchema, isUnattachedIndex, runDdl, runDdlAfterConcurrent, type DdlHooks, type DdlOptions } from './ddl.ts';
import { PacketError, PacketFailure, messageOf, sqlstateOf } from './errors.ts';
import type { OnEvent, StepAction } from './events.ts';
import { guardedFingerprint, fingerprintHash, type Fingerprint } from './fingerprint.ts';
import { ensureLedger, finishRun, finishStepRow, recordAttempt, startRun, startStepRow } from './ledger.ts';
import { prepareDown, prepareUp } from './live-bodies.ts';
import { acquirePacketLock } from './lock.ts';
import { runDownPrecheck } from './precheck.ts';
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
  /**
   * Issue 9 item 5: the owner's reviewed md5 of each function a step patches from its live body,
   * by name (md5(pg_get_functiondef), e.g. KB_2590_ENTRY_MD5): another live body is refused (BG428).
   */
  expectLiveMd5?: Record<string, string>;
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
  const hooks: DdlHooks = {
    settings,
    random: opts.random,
    onNotice: (message) => opts.onEvent?.({ type: 'notice', step: s.step, message }),
    onLeftoverDropped: (index) => opts.onEvent?.({ type: 'leftover', step: s.step, index }),
    onAttempt: async (a) => {
      await recordAttempt(pool, rowId, { attempt: a.attempt, sqlstate: a.sqlstate, message: a.message, durationMs: a.durationMs, backoffMs: a.backoffMs });
      opts.onEvent?.({ type: 'attempt', step: s.step, attempt: a.attempt, ok: a.ok, sqlstate: a.sqlstate, message: a.message, backoffMs: a.backoffMs, ms: a.durationMs });
    },
  };
  // meta.downConcurrently (KB-7D57 step 7): the index is built online first, down.sql promotes it.
  if (file === 'down' && s.downConcurrently !== undefined) return runDdlAfterConcurrent(pool, s.downConcurrently, s.down, ddl, hooks);
  return runDdl(pool, s[file], s.meta.concurrently, ddl, hooks);
}

const UNIQUE_VIOLATION = '23505';

function failure(err: unknown, s: PacketStep, runId: string, what: string, action: 'up' | 'down' = 'up'): PacketError {
  if (err instanceof PacketError) return err;
  const sqlstate = err instanceof DdlFailure ? err.sqlstate : sqlstateOf(err);
  // CONTRACT.md BG428: the SQL itself refuses (step 7 without approval, its rollback after a cross-collection birth).
  // A down whose unique index cannot be built online because of duplicates meets the same refusal
  // (a code born in a second collection during step 7's concurrent build): the data forbids the down,
  // and the INVALID leftover is gone, so nothing changed.
  const refused = sqlstate === 'BG428' || (action === 'down' && s.downConcurrently !== undefined && sqlstate === UNIQUE_VIOLATION);
  const code = refused ? PacketFailure.Precondition : PacketFailure.StepFailed;
  const cause = err instanceof DdlFailure ? err.cause : err;
  return new PacketError(code, `step ${s.step} (${s.meta.title}) ${what}: ${messageOf(err)}`, { runId, step: s.step, sqlstate: refused ? 'BG428' : sqlstate, cause });
}

/** Record a refusal (BG428) of one step before any of its statements is sent, and build the error. */
async function refuse(
  pool: pg.Pool,
  r: { runId: string; s: PacketStep; action: 'up' | 'down'; detail: string; owner?: string; approvalId?: string; entryHash?: string },
  emit: ReturnType<typeof stepEmitter>,
): Promise<PacketError> {
  const rowId = await startStepRow(pool, { runId: r.runId, step: r.s.step, action: r.action, owner: r.owner, approvalId: r.approvalId, entryHash: r.entryHash });
  await finishStepRow(pool, rowId, { status: 'refused', detail: r.detail, sqlstate: 'BG428' });
  emit('refused', r.action, r.detail);
  return new PacketError(PacketFailure.Precondition, r.detail, { runId: r.runId, step: r.s.step, sqlstate: 'BG428' });
}

/**
 * Whether a rollback has to run this step's down. Not for a self-undoing step (it left nothing),
 * nor for one whose verify says it is not applied, except: a CONCURRENTLY step (an INVALID leftover
 * does not verify but still must go), and a step whose down's concurrent index exists without its
 * constraint (a down stopped between its two parts: the down completes it).
 */
export async function downNeeded(pool: Pick<pg.Pool, 'query'>, s: PacketStep, verified: VerifyResult): Promise<boolean> {
  if (s.meta.selfUndoing) return false;
  if (verified.ok || s.meta.concurrently) return true;
  const index = s.downConcurrently === undefined ? undefined : concurrentIndexName(s.downConcurrently);
  return index !== undefined && (await isUnattachedIndex(pool, index));
}

/**
 * Issue 7 item 7: the higher steps (not self-undoing) that still verify as applied. A down run
 * under them would undo a step others are built on (step 7's under step 8's pivot births), so
 * rollbackStep refuses; rollback --to N takes the steps in reverse, so it never meets this.
 */
export async function appliedAbove(pool: Pick<pg.Pool, 'query'>, s: PacketStep, steps: PacketStep[]): Promise<number[]> {
  const above: number[] = [];
  for (const x of steps) {
    if (x.step > s.step && !x.meta.selfUndoing && (await verifyStepSql(pool, x)).ok) above.push(x.step);
  }
  return above;
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
        const detail = `step ${s.step} (${s.meta.title}) is a one-way door and needs an owner approval: pass owner and approval id (birthgate apply --owner NAME --approval ID)`;
        throw await refuse(pool, { runId, s, action: 'up', detail, owner: opts.owner, approvalId: opts.approvalId, entryHash }, emit);
      }
      settings = approvalSettings(approval.data);
    }

    // The approval (if any) is in the ledger before the one-way statement runs.
    const rowId = await startStepRow(pool, { runId, step: s.step, action: 'up', owner: settings && opts.owner, approvalId: settings && opts.approvalId, entryHash });
    emit('start', 'up');
    let attempts = 0;
    try {
      // ── issue 9 item 5 (steps 4, 5): capture the live body; up.sql derives its patch from it ──
      const live = await prepareUp(pool, s, { runId, stepRowId: rowId, expectMd5: opts.expectLiveMd5 });
      attempts = await execute(pool, s, 'up', rowId, ddl, opts, live ? { ...settings, ...live.settings } : settings);
      await live?.committed();
      // ── end issue 9 item 5 ──
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
 * Roll one step back with its down.sql: skipped when there is nothing to undo (downNeeded); refused
 * (BG428, nothing sent) while a higher step still verifies as applied, or when the step's
 * down-precheck.sql says its down would be refused.
 */
export async function rollbackStep(pool: pg.Pool, step: number | PacketStep, opts: StepRunOptions = {}): Promise<StepOutcome> {
  const steps = opts.steps ?? discoverSteps();
  const s = typeof step === 'number' ? findStep(steps, step) : step;
  const ddl = DdlOptionsSchema.parse(opts.ddl ?? {});
  return standalone(pool, 'step', s.step, opts, async (runId) => {
    const started = performance.now();
    const emit = stepEmitter(s, opts, started);
    const entryHash = opts.entry ? fingerprintHash(opts.entry) : undefined;
    const before = await verifyStepSql(pool, s);
    if (!(await downNeeded(pool, s, before))) {
      const exit = opts.entry ?? (await guardedFingerprint(pool));
      const rowId = await startStepRow(pool, { runId, step: s.step, action: 'skip', entryHash: fingerprintHash(exit) });
      const detail = s.meta.selfUndoing ? 'self-undoing step: nothing to roll back' : `not applied, skipped: ${before.detail}`;
      await finishStepRow(pool, rowId, { status: 'ok', detail, exit });
      emit('skip', 'skip', detail);
      return { step: s.step, action: 'skip', attempts: 0, ms: performance.now() - started, detail, exit };
    }

    const above = await appliedAbove(pool, s, steps);
    if (above.length) {
      const detail = `step ${s.step} (${s.meta.title}) cannot be rolled back out of order: step(s) ${above.join(', ')} still applied; roll back from the top (birthgate rollback --to ${s.step - 1})`;
      throw await refuse(pool, { runId, s, action: 'down', detail, entryHash }, emit);
    }
    // The state as it is now: every higher down has run (above is empty), so no plan is passed.
    const pre = await runDownPrecheck(pool, s, ddl);
    if (pre && !pre.ok) {
      throw await refuse(pool, { runId, s, action: 'down', detail: `step ${s.step} (${s.meta.title}) down-precheck refuses: ${pre.detail}`, entryHash }, emit);
    }

    const rowId = await startStepRow(pool, { runId, step: s.step, action: 'down', entryHash });
    emit('start', 'down');
    let attempts = 0;
    try {
      // ── issue 9 item 5 (steps 4, 5): down.sql restores the body captured before the up ──
      const live = await prepareDown(pool, s);
      attempts = await execute(pool, s, 'down', rowId, ddl, opts, live?.settings);
      await live?.restored(runId);
      // ── end issue 9 item 5 ──
      const after = await verifyStepSql(pool, s);
      if (after.ok) throw new PacketError(PacketFailure.StepFailed, `step ${s.step} rolled back but its verify still holds: ${after.detail}`, { runId, step: s.step });
      const exit = await guardedFingerprint(pool);
      const detail = `rolled back (${after.detail})${live ? `; ${live.note}` : ''}`;
      await finishStepRow(pool, rowId, { status: 'ok', attempts, detail, exit });
      emit('done', 'down', detail, attempts);
      return { step: s.step, action: 'down', attempts, ms: performance.now() - started, detail, exit };
    } catch (err) {
      const e = failure(err, s, runId, 'rollback failed', 'down');
      await finishStepRow(pool, rowId, { status: e.code === PacketFailure.Precondition ? 'refused' : 'failed', attempts: (err as DdlFailure).attempts ?? attempts, detail: e.message, sqlstate: e.sqlstate });
      emit(e.code === PacketFailure.Precondition ? 'refused' : 'failed', 'down', e.message);
      throw e;
    }
  });
}
