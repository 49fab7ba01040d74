// KB-7D57 "Every step lists its rollback", KB-3A66 §2 "entry hash == exit hash": every step rolls
// back to the entry catalog fingerprint (sql/probes/catalog_fingerprint.sql), the two function
// patches restore the entry md5 on the same OID, and the one-way door of step 7 is guarded both ways.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FreshDatabase } from './support/db.ts';
import {
  applyStep, applyStepsSql, catalogFingerprint, packetSteps, rollbackStep, rollbackStepsSql, verifyStep,
} from './support/packet-sql.ts';
import { rejectsWith, worldDatabase } from './support/packet-world.ts';

const fnState = `SELECT proname, oid::text, md5(pg_get_functiondef(oid)) AS md5 FROM pg_proc
                  WHERE proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id') ORDER BY proname`;
const lastStep = Math.max(...packetSteps().map((s) => s.meta.step));

describe('apply packet rollbacks', () => {
  let db: FreshDatabase;
  let entry: Record<string, unknown>;

  before(async () => {
    db = await worldDatabase('apply_rollback');
    entry = await catalogFingerprint(db.pool);
  });
  after(async () => db?.dispose());

  for (let k = 1; k <= 6; k++) {
    test(`steps 1..${k} applied then rolled back: catalog equals the entry fingerprint`, async () => {
      await applyStepsSql(db.pool, k);
      assert.notDeepEqual(await catalogFingerprint(db.pool), entry, 'the steps changed something');
      await rollbackStepsSql(db.pool, 0, k);
      assert.deepEqual(await catalogFingerprint(db.pool), entry);
    });
  }

  test('steps 4 and 5 are OID-stable and their rollbacks restore the entry md5', async () => {
    const before = (await db.pool.query(fnState)).rows;
    await applyStepsSql(db.pool, 5);
    const patched = (await db.pool.query(fnState)).rows;
    assert.deepEqual(patched.map((r) => r.oid), before.map((r) => r.oid), 'same OIDs after the patch');
    for (let i = 0; i < before.length; i++) assert.notEqual(patched[i].md5, before[i].md5, `${before[i].proname} patched`);
    await rollbackStep(db.pool, 5);
    await rollbackStep(db.pool, 4);
    assert.deepEqual((await db.pool.query(fnState)).rows, before, 'entry md5 and OID again');
    await rollbackStepsSql(db.pool, 0, 3);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('each step reports itself applied only after it ran (verify drives idempotent skips)', async () => {
    for (const s of packetSteps()) {
      const k = s.meta.step;
      if (k !== 6) assert.equal((await verifyStep(db.pool, k)).ok, false, `step ${k} verify before apply`);
      await applyStep(db.pool, k, k === 7 ? { owner: 'test-owner', approvalId: 'APR-7' } : undefined);
      assert.equal((await verifyStep(db.pool, k)).ok, true, `step ${k} verify after apply`);
    }
    await rollbackStepsSql(db.pool, 0);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('step 7 refuses without an owner approval (BG428) and changes nothing', async () => {
    await applyStepsSql(db.pool, 6);
    const before = await catalogFingerprint(db.pool);
    await rejectsWith(applyStep(db.pool, 7), 'BG428', /one-way door and needs an owner approval/);
    await rejectsWith(applyStep(db.pool, 7, { owner: 'someone', approvalId: ' ' }), 'BG428');
    assert.deepEqual(await catalogFingerprint(db.pool), before);
    await rollbackStepsSql(db.pool, 0, 6);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  for (const k of [7, 8, 9, 10, 11, 12, 13, 14, 15, 16].filter((n) => n <= lastStep)) {
    test(`steps 1..${k} applied then rolled back: catalog equals the entry fingerprint`, async () => {
      await applyStepsSql(db.pool, k);
      assert.notDeepEqual(await catalogFingerprint(db.pool), entry, 'the steps changed something');
      await rollbackStepsSql(db.pool, 0, k);
      assert.deepEqual(await catalogFingerprint(db.pool), entry);
    });
  }

  test('step 7 rollback refuses with BG428 once a code is born in a second collection', async () => {
    await applyStepsSql(db.pool, 8);
    // The pivot births of step 8 are second-collection births.
    const before = await catalogFingerprint(db.pool);
    await rejectsWith(rollbackStep(db.pool, 7), 'BG428', /born in more than one collection \(PIV-101, PIV-103/);
    assert.deepEqual(await catalogFingerprint(db.pool), before, 'the refused rollback changed nothing');

    // With step 8 rolled back, an ordinary cross-collection insert closes the door just the same.
    await rollbackStep(db.pool, 8);
    const c = await db.pool.query<{ code: string }>(
      `SELECT entity_code AS code FROM birth_registry WHERE collection_name = 'dot_tools' ORDER BY id LIMIT 1`);
    const code = c.rows[0]!.code;
    await db.pool.query(`INSERT INTO collection_registry (code, collection, name, _dot_origin) VALUES ($1, 'x_cross', 'x', 'test')`, [code]);
    await rejectsWith(rollbackStep(db.pool, 7), 'BG428', new RegExp(`1 entity_code\\(s\\) are born in more than one collection \\(${code}\\)`));

    // Undo the second birth and the door can be closed again.
    await db.pool.query(`DELETE FROM collection_registry WHERE code = $1`, [code]);
    await db.pool.query(`DELETE FROM birth_registry WHERE entity_code = $1 AND collection_name = 'collection_registry'`, [code]);
    await rollbackStepsSql(db.pool, 0, 7);
    const fp = await catalogFingerprint(db.pool);
    assert.deepEqual(fp.constraints, entry.constraints);
    assert.deepEqual(fp.functions, entry.functions);
    assert.deepEqual(fp.triggers, entry.triggers);
  });
});
