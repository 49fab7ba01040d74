// The packet runner (issue 3): KB-7D57 in strict order with backup, drift check, lock discipline and
// a ledger; automatic rollback only before the one-way door (KB-3A66 §5); step 7 owner-gated.
import { workerPassword } from './support/packet-world.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadWorld } from '../fixtures/world.ts';
import { applyPacket, entryCheck, rollbackPacket } from '../packet/apply.ts';
import { isInvalidIndex } from '../packet/ddl.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import type { PacketEvent } from '../packet/events.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { readRun } from '../packet/ledger.ts';
import { PACKET_LOCK } from '../packet/lock.ts';
import { applyStep, rollbackStep, verifyStep } from '../packet/step-runner.ts';
import { runDownPrecheck } from '../packet/precheck.ts';
import { defaultStepsRoot, discoverSteps, findStep } from '../packet/steps.ts';
import { governedTriggers } from '../packet/triggers.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';

const approval = { owner: 'test-owner', approvalId: 'APR-KB-7D57-7' };
const reportDir = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'packet-runner-'));
/** The same password helper-2's SQL tests use: the role is cluster-wide, test files share it. */


async function world(prefix: string): Promise<FreshDatabase> {
  const db = await freshDatabase(prefix);
  await loadWorld(db.pool, { scale: 'test' });
  return db;
}

/** Another session holding a table lock in an open transaction, as live traffic (or an operator) would. */
async function holdLock(url: string, sql: string): Promise<{ release(): Promise<void> }> {
  const c = new pg.Client({ connectionString: url, application_name: 'test-lock-holder' });
  await c.connect();
  await c.query('BEGIN');
  await c.query(sql);
  let done: Promise<void> | undefined;
  return { release: () => (done ??= c.query('COMMIT').then(() => c.end())) };
}

async function rejectsPacket(p: Promise<unknown>, code: PacketFailure): Promise<PacketError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof PacketError, `expected a PacketError, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  return assert.fail(`expected ${code}, but it succeeded`);
}

const fast = { lockTimeoutMs: 500, backoffBaseMs: 100, backoffMaxMs: 400 };

describe('apply and rollback through the one-way door', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  before(async () => {
    db = await world('packet_apply');
    entry = await catalogFingerprint(db.pool);
  });
  after(async () => db?.dispose());

  test('apply through 6 then rollback to 0: the catalog is back at the entry fingerprint', async () => {
    const r = await applyPacket(db.pool, { through: 6, reportDir });
    assert.deepEqual(r.steps.map((s) => [s.step, s.action]), [[1, 'up'], [2, 'up'], [3, 'up'], [4, 'up'], [5, 'up'], [6, 'up']]);
    assert.notDeepEqual(await catalogFingerprint(db.pool), entry);
    // KB-7D57 "Backup commands (run first)": schema + function fingerprints, written before step 1.
    const schema = fs.readFileSync(path.join(r.backup.dir, 'birth_dot_schema_pre.sql'), 'utf8');
    assert.match(schema, /ADD CONSTRAINT "birth_registry_entity_code_unique" UNIQUE \(entity_code\)/);
    assert.match(schema, /CREATE TRIGGER trg_auto_code_dot_tools BEFORE INSERT ON public\.dot_tools/);
    const hashes = fs.readFileSync(path.join(r.backup.dir, 'fn_hash_pre.txt'), 'utf8').trim().split('\n');
    assert.deepEqual(hashes.map((l) => l.split('|')[0]), ['fn_birth_gate', 'fn_birth_registry_auto', 'fn_birth_registry_auto_id']);
    assert.equal(hashes[1]!.split('|')[1], entry.functions['fn_birth_registry_auto()']!.md5);
    const run = await readRun(db.pool, r.runId);
    assert.equal(run.status, 'applied');
    assert.equal(run.steps[0]!.entry_hash, r.entryHash, 'the ledger holds the entry fingerprint hash');

    const rb = await rollbackPacket(db.pool, { to: 0 });
    assert.deepEqual(rb.steps.filter((s) => s.action === 'down').map((s) => s.step), [5, 4, 3, 2, 1]);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('re-applying is idempotent: applied steps are skipped and say so', async () => {
    await applyPacket(db.pool, { through: 5, reportDir });
    const again = await applyPacket(db.pool, { through: 6, reportDir });
    assert.deepEqual(again.steps.map((s) => s.action), ['skip', 'skip', 'skip', 'skip', 'skip', 'up'], 'step 6 is self-undoing, so it is re-run');
    for (const s of again.steps.slice(0, 5)) assert.match(s.detail, /^already applied, skipped: /);
    const run = await readRun(db.pool, again.runId);
    assert.deepEqual(run.steps.map((s) => s.action), ['skip', 'skip', 'skip', 'skip', 'skip', 'up']);
  });

  test('step 7 without an owner approval refuses (BG428) and does nothing one-way', async () => {
    const err = await rejectsPacket(applyPacket(db.pool, { through: 7, reportDir }), PacketFailure.Precondition);
    assert.equal(err.sqlstate, 'BG428');
    assert.match(err.message, /one-way door and needs an owner approval/);
    assert.equal((await verifyStep(db.pool, 7)).ok, false, 'UNIQUE(entity_code) still there');
    assert.equal((await verifyStep(db.pool, 6)).ok, true, 'steps 1..6 stay applied: the refusal is the designed stop');
    const run = await readRun(db.pool, err.runId!);
    assert.equal(run.status, 'refused');
    const s7 = run.steps.find((s) => s.step === 7)!;
    assert.equal(s7.status, 'refused');
    assert.equal(s7.attempts, 0, 'no statement of step 7 was sent');
    // Half an approval is no approval.
    await rejectsPacket(applyPacket(db.pool, { through: 7, owner: 'someone', reportDir }), PacketFailure.BadRequest);
  });

  test('with an approval step 7 runs and the ledger holds the owner and the approval id', async () => {
    const r = await applyPacket(db.pool, { through: 7, ...approval, reportDir });
    assert.equal(r.steps.find((s) => s.step === 7)!.action, 'up');
    assert.equal((await verifyStep(db.pool, 7)).ok, true);
    const run = await readRun(db.pool, r.runId);
    assert.equal(run.owner, approval.owner);
    assert.equal(run.approval_id, approval.approvalId);
    const s7 = run.steps.find((s) => s.step === 7)!;
    assert.deepEqual([s7.owner, s7.approval_id, s7.status], [approval.owner, approval.approvalId, 'ok']);
  });

  test('step 1 takes no lock on the shared pg_authid when both of its roles are in place: a rehearsal (which holds its locks to its ROLLBACK) stalls no role DDL elsewhere', async () => {
    const up = findStep(discoverSteps(), 1).up;
    const roles = up.slice(up.indexOf('DO $$'), up.indexOf('$$;', up.indexOf('DO $$') + 5) + 3);
    assert.match(roles, /CREATE ROLE birthgate_owner/, 'the roles block of step 1');
    const c = await db.pool.connect();
    const pgAuthidLocks = async () => (await c.query<{ mode: string }>(
      // AccessShareLock is the read of pg_roles itself, which conflicts with no role DDL.
      `SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation = 'pg_catalog.pg_authid'::regclass
          AND mode <> 'AccessShareLock' ORDER BY mode`)).rows.map((r) => r.mode);
    try {
      await c.query(roles); // the cluster's roles exist (an earlier test of this run made them)
      await c.query('BEGIN');
      await c.query(roles);
      assert.deepEqual(await pgAuthidLocks(), [], 'no lock beyond reading when there is nothing to do');
      await c.query('ROLLBACK');
      // A role with too much power is brought down, under the lock.
      await c.query('BEGIN');
      await c.query('ALTER ROLE birthgate_operator CREATEDB');
      await c.query(roles);
      assert.ok((await pgAuthidLocks()).includes('ShareRowExclusiveLock'), 'the lock is taken when a role changes');
      assert.equal((await c.query<{ d: boolean }>(`SELECT rolcreatedb AS d FROM pg_roles WHERE rolname = 'birthgate_operator'`)).rows[0]!.d, false);
      await c.query('ROLLBACK');
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
  });

  test('the whole packet: governed triggers end ENABLE ALWAYS and birthgate_worker is a non-superuser login', async () => {
    const r = await applyPacket(db.pool, { ...approval, reportDir, workerPassword });
    assert.equal(r.workerRole, true);
    const trg = await governedTriggers(db.pool);
    assert.deepEqual(trg.map((t) => [t.table, t.trigger, t.enabled]), [
      ['birth_admission_entry', 'trg_admission_entry_immutable', 'A'], ['birth_admission_entry', 'trg_admission_entry_no_truncate', 'A'],
      ['birth_admission_switch_log', 'trg_switch_log_append_only', 'A'], ['birth_admission_switch_log', 'trg_switch_log_no_truncate', 'A'],
      ['birth_ddl_ledger', 'trg_ddl_ledger_append_only', 'A'], ['birth_ddl_ledger', 'trg_ddl_ledger_no_truncate', 'A'],
      ['birth_drift_baseline', 'trg_drift_baseline_append_only', 'A'], ['birth_drift_baseline', 'trg_drift_baseline_no_truncate', 'A'],
      ['birth_drift_rebaseline', 'trg_drift_rebaseline_append_only', 'A'], ['birth_drift_rebaseline', 'trg_drift_rebaseline_no_truncate', 'A'],
      ['dot_tools', 'trg_dt_consume', 'A'], ['dot_tools', 'trg_dt_finalize', 'A'], ['dot_tools', 'trg_permit_gate_dot_tools', 'A'],
      ['dot_tools', 'trg_permit_guard_delete_dot_tools', 'A'], ['dot_tools', 'trg_permit_guard_dot_tools', 'A'],
      ['dot_tools', 'trg_permit_guard_truncate_dot_tools', 'A'],
    ]);
    const u = new URL(db.url);
    u.username = 'birthgate_worker';
    u.password = workerPassword;
    const worker = new pg.Client({ connectionString: u.toString() });
    await worker.connect();
    try {
      const me = await worker.query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user');
      assert.equal(me.rows[0]!.rolsuper, false);
    } finally {
      await worker.end();
    }
  });

  test("step 7's rollback refuses clearly once a code is born in a second collection", async () => {
    assert.equal((await verifyStep(db.pool, 8)).ok, true, 'step 8 birthed the pivots in pivot_definitions');
    // Under step 8 (and the rest) step 7 is refused out of order, before its precheck or down runs.
    const err = await rejectsPacket(rollbackStep(db.pool, 7), PacketFailure.Precondition);
    assert.equal(err.sqlstate, 'BG428');
    assert.match(err.message, /cannot be rolled back out of order: step\(s\) 8, 9, /);
    // Its precheck names the codes that close the door while step 8's births stand.
    const pre = await runDownPrecheck(db.pool, findStep(discoverSteps(), 7), { lockTimeoutMs: 1000, statementTimeoutMs: 60_000 });
    assert.equal(pre?.ok, false);
    assert.match(pre!.detail, /born in more than one collection \(PIV-101/);
    assert.equal((await verifyStep(db.pool, 7)).ok, true, 'nothing changed');
  });

  test('a failure past the one-way door is not rolled back: the run stops and says where', async () => {
    await rollbackPacket(db.pool, { to: 12 });
    assert.equal((await verifyStep(db.pool, 13)).ok, false);
    const blocker = await holdLock(db.url, 'LOCK TABLE meta_catalog IN ACCESS SHARE MODE'); // step 13 alters meta_catalog
    try {
      const err = await rejectsPacket(applyPacket(db.pool, { through: 13, ...approval, reportDir, ddl: { ...fast, maxAttempts: 1 } }), PacketFailure.StoppedPastOneWay);
      assert.equal(err.step, 13);
      assert.equal(err.sqlstate, '55P03');
      assert.equal((await readRun(db.pool, err.runId!)).status, 'stopped');
    } finally {
      await blocker.release();
    }
    for (const k of [7, 8, 12]) assert.equal((await verifyStep(db.pool, k)).ok, true, `step ${k} left in place`);
  });

  test('rollback to 0 after the whole packet returns to the entry fingerprint', async () => {
    const rb = await rollbackPacket(db.pool, { to: 0 });
    assert.deepEqual(rb.steps.filter((s) => s.action === 'down').map((s) => s.step), [12, 11, 10, 9, 8, 7, 5, 4, 3, 2, 1]);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });
});

describe('a failure before the one-way door rolls back in reverse', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  before(async () => {
    db = await world('packet_fail');
    entry = await catalogFingerprint(db.pool);
  });
  after(async () => db?.dispose());

  test('lock held at step 3 with one attempt: steps 2 and 1 are rolled back to the entry fingerprint', async () => {
    const blocker = await holdLock(db.url, 'LOCK TABLE birth_registry IN ACCESS SHARE MODE');
    const events: PacketEvent[] = [];
    const err = await rejectsPacket(applyPacket(db.pool, {
      through: 6, reportDir, ddl: { ...fast, maxAttempts: 1 },
      onEvent: (e) => {
        events.push(e);
        // DROP INDEX CONCURRENTLY (step 2's down) waits for every locker: let go once step 3 failed.
        if (e.type === 'attempt' && e.step === 3 && !e.ok) void blocker.release();
      },
    }), PacketFailure.StepFailed);
    await blocker.release();
    assert.equal(err.step, 3);
    assert.equal(err.sqlstate, '55P03');
    const rollback = events.find((e) => e.type === 'rollback');
    assert.deepEqual(rollback?.type === 'rollback' && rollback.steps, [2, 1]);
    assert.equal((err.detail as { proof: { equal: boolean } }).proof.equal, true);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    const run = await readRun(db.pool, err.runId!);
    assert.equal(run.status, 'rolled_back');
    assert.deepEqual(run.steps.map((s) => `${s.step}:${s.action}:${s.status}`), ['1:up:ok', '2:up:ok', '3:up:failed', '2:down:ok', '1:down:ok']);
    assert.deepEqual(run.steps[2]!.tries.map((t) => t.sqlstate), ['55P03']);
  });

  test('an injected failure at step 5 (test-only packet) rolls back 4, 3, 2, 1', async () => {
    const root = fs.mkdtempSync(path.join(reportDir, 'packet-'));
    fs.cpSync(defaultStepsRoot, root, { recursive: true });
    fs.writeFileSync(path.join(root, '05-patch-fn-birth-registry-auto-id', 'up.sql'),
      `DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'injected step-5 failure'; END $$;`);
    const err = await rejectsPacket(applyPacket(db.pool, { through: 6, reportDir, stepsRoot: root }), PacketFailure.StepFailed);
    assert.match(err.message, /injected step-5 failure.*rolled back 4, 3, 2, 1/);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });
});

describe('locks, concurrency and leftovers', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  before(async () => {
    db = await world('packet_locks');
    entry = await catalogFingerprint(db.pool);
  });
  after(async () => db?.dispose());

  test('a second applier is refused by the advisory lock while the first runs', async () => {
    const results = await Promise.allSettled([applyPacket(db.pool, { through: 3, reportDir }), applyPacket(db.pool, { through: 3, reportDir })]);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal(refused.length, 1);
    assert.ok(refused[0]!.reason instanceof PacketError && refused[0]!.reason.code === PacketFailure.Busy, String(refused[0]!.reason));
    assert.match((refused[0]!.reason as Error).message, /another applier holds the packet lock \(pid \d+/);
    await rollbackPacket(db.pool, { to: 0 });
    // The lock is free again afterwards.
    const c = await db.pool.connect();
    try {
      const lock = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
      assert.equal(lock.rows[0]!.ok, true);
      await c.query('SELECT pg_advisory_unlock($1, $2)', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
    } finally {
      c.release();
    }
  });

  test('lock_timeout on 55P03 is retried with backoff until the lock is free, every attempt in the ledger', async () => {
    await applyPacket(db.pool, { through: 2, reportDir });
    const blocker = await holdLock(db.url, 'LOCK TABLE birth_registry IN ACCESS EXCLUSIVE MODE');
    const timer = setTimeout(() => void blocker.release(), 1500);
    const started = Date.now();
    try {
      const out = await applyStep(db.pool, 3, { ddl: { lockTimeoutMs: 500, backoffBaseMs: 200, backoffMaxMs: 1000, maxAttempts: 8 } });
      assert.ok(out.attempts >= 2, `attempts ${out.attempts}`);
      assert.ok(Date.now() - started >= 1400, 'it waited for the holder');
      const run = await db.pool.query<{ run_id: string }>('SELECT max(run_id) AS run_id FROM birthgate_ledger.apply_run');
      const tries = (await readRun(db.pool, run.rows[0]!.run_id)).steps[0]!.tries;
      assert.equal(tries.length, out.attempts);
      assert.ok(tries.slice(0, -1).every((t) => t.sqlstate === '55P03' && t.backoff_ms !== null && t.backoff_ms > 0));
      assert.equal(tries.at(-1)!.sqlstate, null, 'the last attempt succeeded');
      // Exponential: each backoff ceiling doubles (equal jitter keeps at least half of it).
      const waits = tries.slice(0, -1).map((t) => t.backoff_ms!);
      waits.forEach((w, i) => assert.ok(w >= (200 * 2 ** i) / 2 && w <= Math.min(1000, 200 * 2 ** i), `backoff ${i + 1}: ${w}`));
    } finally {
      clearTimeout(timer);
      await blocker.release();
    }
    await rollbackPacket(db.pool, { to: 0 });
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('an INVALID leftover of an interrupted CONCURRENTLY build is detected and dropped', async () => {
    await applyPacket(db.pool, { through: 1, reportDir });
    // A writer's open transaction makes CREATE INDEX CONCURRENTLY time out after it registered the index.
    const writer = await holdLock(db.url, 'LOCK TABLE birth_registry IN ROW EXCLUSIVE MODE');
    const events: PacketEvent[] = [];
    const err = await rejectsPacket(applyStep(db.pool, 2, {
      ddl: { ...fast, maxAttempts: 1 }, onEvent: (e) => events.push(e),
    }), PacketFailure.StepFailed);
    assert.equal(err.sqlstate, '55P03');
    assert.equal(await isInvalidIndex(db.pool, 'birth_registry_code_collection_uq'), true, 'the writer still blocks the drop: the leftover is there');
    assert.match(err.message, /INVALID leftover index birth_registry_code_collection_uq could not be dropped yet/);
    await writer.release();
    // The next run finds it (the drift check tolerates an INVALID leftover), drops it, builds it valid.
    const r = await applyPacket(db.pool, { through: 2, reportDir, onEvent: (e) => events.push(e) });
    assert.ok(events.some((e) => e.type === 'leftover' && e.index === 'birth_registry_code_collection_uq'), 'leftover reported');
    assert.equal(r.steps[1]!.action, 'up');
    const idx = await db.pool.query<{ indisvalid: boolean }>(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.birth_registry_code_collection_uq'::regclass`);
    assert.deepEqual(idx.rows, [{ indisvalid: true }]);
    await rollbackPacket(db.pool, { to: 0 });
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('entry drift: a governed function changed behind the runner is refused, nothing applied', async () => {
    await applyPacket(db.pool, { through: 3, reportDir });
    // A superuser swaps fn_birth_gate's body (OID-stable) between two runs.
    const def = await db.pool.query<{ d: string }>(`SELECT pg_get_functiondef('public.fn_birth_gate()'::regprocedure) AS d`);
    await db.pool.query(def.rows[0]!.d.replace('BEGIN', 'BEGIN\n  PERFORM 1;'));
    const check = await entryCheck(db.pool);
    assert.equal(check.ok, false);
    assert.equal(check.appliedThrough, 3);
    assert.deepEqual(check.diff.map((d) => d.path), ['functions.fn_birth_gate().md5']);
    const err = await rejectsPacket(applyPacket(db.pool, { through: 6, reportDir }), PacketFailure.EntryDrift);
    assert.match(err.message, /recorded baseline — \d+ governed difference\(s\) since run \d+: functions\.fn_birth_gate\(\)\.md5/);
    assert.equal((await verifyStep(db.pool, 4)).ok, false, 'step 4 not applied');
    assert.equal((await readRun(db.pool, err.runId!)).status, 'refused');
    // The operator accepts exactly this state by its governed hash (e.g. from a fresh rehearsal).
    const { governedHash } = await import('../packet/drift.ts');
    const r = await applyPacket(db.pool, { through: 4, reportDir, expectGovernedHash: governedHash(await catalogFingerprint(db.pool)) });
    assert.equal(r.steps.at(-1)!.action, 'up');
    // A hole is drift too: step 3 rolled back by hand under step 4.
    await db.pool.query('ALTER TABLE birth_registry DROP CONSTRAINT birth_registry_code_collection_uq');
    const hole = await rejectsPacket(applyPacket(db.pool, { through: 6, reportDir, expectGovernedHash: governedHash(await catalogFingerprint(db.pool)) }), PacketFailure.EntryDrift);
    assert.match(hole.message, /packet prefix — steps 1\.\.1 hold but step\(s\) 4 also hold/);
  });
});
