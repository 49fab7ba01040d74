// Issue 7 item 7 (+ part of 10): a rollback is refused whole or runs whole. Every planned down's
// down-precheck.sql runs before the first down; rollbackStep refuses out of order; step 7's down
// rebuilds UNIQUE(entity_code) online (CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT …
// USING INDEX) instead of under ACCESS EXCLUSIVE, and the catalog is the entry state again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadWorld } from '../fixtures/world.ts';
import { applyPacket, rollbackPacket } from '../packet/apply.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import type { PacketEvent } from '../packet/events.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { readRun } from '../packet/ledger.ts';
import { runDownPrecheck } from '../packet/precheck.ts';
import { rollbackStep, verifyStep } from '../packet/step-runner.ts';
import { discoverSteps, findStep } from '../packet/steps.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';

const approval = { owner: 'test-owner', approvalId: 'APR-KB-7D57-7' };
const reportDir = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'packet-rollback-order-'));
const steps = discoverSteps();
const step7 = findStep(steps, 7);
const lastStep = steps.at(-1)!.step;
const SINGLE = 'birth_registry.birth_registry_entity_code_unique';
const timeouts = { lockTimeoutMs: 1000, statementTimeoutMs: 60_000 };

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

async function verifyAll(q: Pick<pg.Pool, 'query'>): Promise<Record<number, boolean>> {
  const out: Record<number, boolean> = {};
  for (const s of steps) out[s.step] = (await verifyStep(q, s)).ok;
  return out;
}

/** The single-column unique as the catalog has it now: constraint + index, or where it is missing. */
async function singleUnique(q: Pick<pg.Pool, 'query'>) {
  const r = await q.query<{ con: string | null; idx: string | null; valid: boolean | null; attached: boolean }>(
    `SELECT (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'public.birth_registry'::regclass
                AND conname = 'birth_registry_entity_code_unique') AS con,
            pg_get_indexdef(i.indexrelid) AS idx, i.indisvalid AS valid,
            EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) AS attached
       FROM (SELECT to_regclass('public.birth_registry_entity_code_unique') AS oid) x
       LEFT JOIN pg_index i ON i.indexrelid = x.oid`);
  return r.rows[0]!;
}

/** A code born in dot_tools and not in pivot_definitions: inserting it there births it a second time. */
async function crossCollectionBirth(pool: pg.Pool): Promise<string> {
  const pick = await pool.query<{ code: string }>(
    `SELECT d.code FROM dot_tools d
      WHERE EXISTS (SELECT 1 FROM birth_registry b WHERE b.entity_code = d.code AND b.collection_name = 'dot_tools')
        AND NOT EXISTS (SELECT 1 FROM pivot_definitions p WHERE p.code = d.code)
      ORDER BY d.id LIMIT 1`);
  const code = pick.rows[0]!.code;
  await pool.query(`INSERT INTO pivot_definitions (code, name) VALUES ($1, 'test cross-collection birth')`, [code]);
  const born = await pool.query<{ n: number }>('SELECT count(DISTINCT collection_name)::int AS n FROM birth_registry WHERE entity_code = $1', [code]);
  assert.equal(born.rows[0]!.n, 2, `${code} is born in two collections`);
  return code;
}

describe('rollback order and down prechecks (issue 7 item 7)', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  let atSix: Fingerprint;
  before(async () => {
    db = await freshDatabase('packet_rb_order');
    await loadWorld(db.pool, { scale: 'test' });
    entry = await catalogFingerprint(db.pool);
    await applyPacket(db.pool, { through: 6, reportDir });
    atSix = await catalogFingerprint(db.pool);
  });
  after(async () => db?.dispose());

  test('step 7 down rebuilds the single-column unique concurrently and the catalog equals the entry state', async () => {
    await applyPacket(db.pool, { through: 7, ...approval, reportDir });
    assert.deepEqual(await singleUnique(db.pool), { con: null, idx: null, valid: null, attached: false });

    // down.sql never builds the index itself: without down-concurrently.sql it refuses (55000), so its
    // ACCESS EXCLUSIVE (ADD CONSTRAINT … USING INDEX) never covers a 1.12M-row build.
    await assert.rejects(db.pool.query(step7.down), (e: pg.DatabaseError) => e.code === '55000' && /index birth_registry_entity_code_unique is missing/.test(e.message));

    // A reader in an open transaction (ACCESS SHARE): the concurrent build goes past it; only the brief
    // promotion waits for it (55P03, retried). While it waits, another session already sees the
    // index built, VALID and committed, not yet a constraint: it was built outside the transaction.
    const reader = await holdLock(db.url, 'LOCK TABLE birth_registry IN ACCESS SHARE MODE');
    let seen: Promise<Awaited<ReturnType<typeof singleUnique>>> | undefined;
    const events: PacketEvent[] = [];
    try {
      const out = await rollbackStep(db.pool, 7, {
        ddl: { lockTimeoutMs: 500, backoffBaseMs: 200, backoffMaxMs: 400, maxAttempts: 10 },
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'attempt' && e.step === 7 && e.sqlstate === '55P03' && !seen) {
            seen = singleUnique(db.pool).finally(() => reader.release());
          }
        },
      });
      assert.equal(out.action, 'down');
    } finally {
      await reader.release();
    }
    assert.ok(seen, 'the promotion waited for the reader');
    assert.deepEqual(await seen, {
      con: null, idx: 'CREATE UNIQUE INDEX birth_registry_entity_code_unique ON public.birth_registry USING btree (entity_code)', valid: true, attached: false,
    });
    const tries = events.filter((e): e is Extract<PacketEvent, { type: 'attempt' }> => e.type === 'attempt');
    assert.deepEqual(tries.map((t) => t.attempt), tries.map((_t, i) => i + 1), 'attempts numbered on across both parts');
    assert.equal(tries[0]!.ok, true, 'attempt 1 is the concurrent build, which no reader blocks');
    assert.equal(tries.at(-1)!.ok, true);

    const after = await catalogFingerprint(db.pool);
    assert.deepEqual(after.constraints[SINGLE], entry.constraints[SINGLE]);
    assert.deepEqual(after.indexes.birth_registry_entity_code_unique, entry.indexes.birth_registry_entity_code_unique);
    assert.deepEqual(after, atSix, 'the catalog is exactly the state before step 7');
  });

  test('when the promotion cannot get its lock, the concurrently built index is dropped again and step 7 stays applied', async () => {
    await applyPacket(db.pool, { through: 7, ...approval, reportDir });
    const applied = await catalogFingerprint(db.pool);
    const reader = await holdLock(db.url, 'LOCK TABLE birth_registry IN ACCESS SHARE MODE');
    try {
      const err = await rejectsPacket(rollbackStep(db.pool, 7, {
        ddl: { lockTimeoutMs: 500, maxAttempts: 1 },
        // DROP INDEX CONCURRENTLY waits for every locker: let go once the promotion gave up.
        onEvent: (e) => void (e.type === 'attempt' && e.sqlstate === '55P03' && reader.release()),
      }), PacketFailure.StepFailed);
      assert.equal(err.sqlstate, '55P03');
      assert.match(err.message, /the index birth_registry_entity_code_unique built for it was dropped again/);
    } finally {
      await reader.release();
    }
    assert.equal((await verifyStep(db.pool, 7)).ok, true);
    assert.deepEqual(await catalogFingerprint(db.pool), applied, 'nothing changed');
  });

  test('rollbackStep refuses out of order', async () => {
    await applyPacket(db.pool, { through: 8, ...approval, reportDir });
    const applied = await catalogFingerprint(db.pool);
    const err = await rejectsPacket(rollbackStep(db.pool, 7), PacketFailure.Precondition);
    assert.equal(err.sqlstate, 'BG428');
    assert.match(err.message, /step 7 .* cannot be rolled back out of order: step\(s\) 8 still applied; roll back from the top \(birthgate rollback --to 6\)/);
    const run = await readRun(db.pool, err.runId!);
    assert.equal(run.status, 'refused');
    assert.deepEqual(run.steps.map((s) => [s.step, s.action, s.status, s.attempts]), [[7, 'down', 'refused', 0]]);
    // Self-undoing step 6 does not count; every other applied step above does.
    const low = await rejectsPacket(rollbackStep(db.pool, 3), PacketFailure.Precondition);
    assert.match(low.message, /out of order: step\(s\) 4, 5, 7, 8 still applied/);
    assert.deepEqual(await catalogFingerprint(db.pool), applied, 'nothing changed');
    // A step that is not applied is still skipped, whatever stands above it.
    assert.equal((await rollbackStep(db.pool, lastStep)).action, 'skip');

    // In order it goes: 8, then 7 (whose precheck now finds no second-collection birth).
    assert.equal((await rollbackStep(db.pool, 8)).action, 'down');
    assert.equal((await rollbackStep(db.pool, 7)).action, 'down');
    assert.deepEqual(await catalogFingerprint(db.pool), atSix);
  });

  test("step 7's precheck discounts step 8's pivot births only when step 8's down runs first", async () => {
    await applyPacket(db.pool, { through: 8, ...approval, reportDir });
    const now = await runDownPrecheck(db.pool, step7, timeouts);
    assert.equal(now?.ok, false);
    assert.match(now!.detail, /5 entity_code\(s\) are born in more than one collection \(PIV-101, PIV-103, PIV-104, PIV-105, PIV-106\)/);
    const planned = await runDownPrecheck(db.pool, step7, { ...timeouts, plan: [8, 7] });
    assert.deepEqual(planned, { step: 7, ok: true, detail: 'no entity_code is born in more than one collection: UNIQUE(entity_code) can be restored' });
  });

  test('a second-collection birth the precheck did not see fails the concurrent build: refused (BG428), leftover dropped, nothing changed', async () => {
    await applyPacket(db.pool, { through: 8, ...approval, reportDir });
    await rollbackStep(db.pool, 8);
    const code = await crossCollectionBirth(db.pool);
    const before = await catalogFingerprint(db.pool);
    // The race the precheck cannot close (a birth between it and the build), played by leaving it out.
    const err = await rejectsPacket(rollbackStep(db.pool, { ...step7, downPrecheck: undefined }), PacketFailure.Precondition);
    assert.equal(err.sqlstate, 'BG428');
    assert.match(err.message, /could not create unique index "birth_registry_entity_code_unique"/);
    assert.deepEqual(await singleUnique(db.pool), { con: null, idx: null, valid: null, attached: false }, 'the INVALID leftover is gone');
    assert.deepEqual(await catalogFingerprint(db.pool), before, 'nothing changed');
    await db.pool.query('DELETE FROM pivot_definitions WHERE code = $1', [code]);
    await db.pool.query(`DELETE FROM birth_registry WHERE entity_code = $1 AND collection_name = 'pivot_definitions'`, [code]);
  });

  test('rollback --to 6 after a cross-collection birth refuses before any down runs, nothing changed', async () => {
    await applyPacket(db.pool, { ...approval, reportDir });
    const code = await crossCollectionBirth(db.pool);
    const before = await catalogFingerprint(db.pool);
    const states = await verifyAll(db.pool);
    assert.ok(Object.values(states).every(Boolean), `every step applied: ${JSON.stringify(states)}`);

    const events: PacketEvent[] = [];
    const err = await rejectsPacket(rollbackPacket(db.pool, { to: 6, onEvent: (e) => events.push(e) }), PacketFailure.Precondition);
    assert.equal(err.sqlstate, 'BG428');
    assert.equal(err.step, 7);
    assert.match(err.message, new RegExp(`^rollback --to 6 refused before any down ran, nothing changed: step 7 \\(.*\\): cannot roll back step 7: 1 entity_code\\(s\\) are born in more than one collection \\(${code}\\)$`));
    assert.deepEqual(events.filter((e) => e.type === 'attempt' || (e.type === 'step' && e.phase !== 'refused')), [], 'no down started');

    assert.deepEqual(await catalogFingerprint(db.pool), before, 'the catalog fingerprint is unchanged');
    assert.deepEqual(await verifyAll(db.pool), states, 'every step still verifies');
    const run = await readRun(db.pool, err.runId!);
    assert.equal(run.status, 'refused');
    assert.deepEqual(run.steps.map((s) => [s.step, s.action, s.status]), [[7, 'down', 'refused']]);

    // Undo the second birth: the same rollback now passes its prechecks (step 8's pivots are
    // discounted, its down runs first) and runs whole, back to the state before step 7.
    await db.pool.query('DELETE FROM pivot_definitions WHERE code = $1', [code]);
    await db.pool.query(`DELETE FROM birth_registry WHERE entity_code = $1 AND collection_name = 'pivot_definitions'`, [code]);
    const rb = await rollbackPacket(db.pool, { to: 6 });
    assert.deepEqual(rb.steps.filter((s) => s.action === 'down').map((s) => s.step), steps.filter((s) => s.step > 6).map((s) => s.step).reverse());
    const fp = await catalogFingerprint(db.pool);
    assert.deepEqual(fp.constraints[SINGLE], entry.constraints[SINGLE]);
    assert.deepEqual(fp.indexes.birth_registry_entity_code_unique, entry.indexes.birth_registry_entity_code_unique);
  });
});
