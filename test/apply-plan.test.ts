// KB-7D57 "Test plan (post-apply)", every line (DESIGN §6), on the test-scale world with the whole
// packet applied (KB-7D57 steps 1–12 and the KB-4410 §D steps 13–16).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import type { FreshDatabase } from './support/db.ts';
import { applyStepsSql, packetSteps, verifyStep } from './support/packet-sql.ts';
import { issuePermit, newDotCode, rejectsWith, worldDatabase, admissionState } from './support/packet-world.ts';

type Dim = { dim: string; block_count: string };
const figures = WORLD_FIGURES.test;
const PIVOTS = [...figures.pivotCollisions];

describe('KB-7D57 post-apply test plan', () => {
  let db: FreshDatabase;
  let entryDims: Map<string, number>;
  let entryBindings: { n: number; fnOid: string };

  before(async () => {
    db = await worldDatabase('apply_plan');
    const dims = await db.pool.query<Dim>('SELECT dim, block_count FROM fn_safety_block_dims()');
    entryDims = new Map(dims.rows.map((d) => [d.dim, Number(d.block_count)]));
    const b = await db.pool.query<{ n: number; oid: string }>(
      `SELECT count(*)::int AS n, min(tgfoid)::text AS oid FROM pg_trigger
        WHERE NOT tgisinternal AND tgfoid = 'fn_birth_registry_auto'::regproc`);
    entryBindings = { n: b.rows[0]!.n, fnOid: b.rows[0]!.oid };
    await applyStepsSql(db.pool, 99);
  });
  after(async () => db?.dispose());

  test('every step verifies after apply', async () => {
    for (const s of packetSteps()) {
      const v = await verifyStep(db.pool, s.meta.step);
      assert.equal(v.ok, true, `step ${s.meta.step}: ${v.detail}`);
    }
  });

  test('composite constraint present, single-column unique absent', async () => {
    const r = await db.pool.query<{ conname: string; def: string }>(
      `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = 'birth_registry'::regclass AND contype = 'u' ORDER BY conname`);
    assert.deepEqual(r.rows, [{ conname: 'birth_registry_code_collection_uq', def: 'UNIQUE (entity_code, collection_name)' }]);
    const idx = await db.pool.query(`SELECT 1 FROM pg_indexes WHERE indexname = 'birth_registry_entity_code_unique'`);
    assert.equal(idx.rowCount, 0);
  });

  test('new-code dot_tools insert with a permit is born once', async () => {
    const code = newDotCode('plan-born-once');
    const permitId = await issuePermit(db.pool, code);
    await db.pool.query(`SELECT * FROM fn_admission_insert_dot_tools($1, $2)`, [permitId, { name: 'plan born once', _dot_origin: 'dot-birth-admit' }]);
    const births = await db.pool.query<{ collection_name: string }>(`SELECT collection_name FROM birth_registry WHERE entity_code = $1`, [code]);
    assert.deepEqual(births.rows, [{ collection_name: 'dot_tools' }]);
  });

  test('cross-collection code is born in its own collection', async () => {
    // The 5 pivot collisions (KB-2590 §4): born in another collection, now also in pivot_definitions.
    const piv = await db.pool.query<{ entity_code: string; n: number; here: boolean }>(
      `SELECT entity_code, count(*)::int AS n, bool_or(collection_name = 'pivot_definitions') AS here
         FROM birth_registry WHERE entity_code = ANY($1) GROUP BY entity_code ORDER BY entity_code`, [PIVOTS]);
    assert.deepEqual(piv.rows, PIVOTS.map((c) => ({ entity_code: c, n: 2, here: true })));

    // A new row in an unflagged family reusing a code already born in dot_tools: the entry conflict
    // target swallowed this birth; the composite one records it in collection_registry.
    const c = await db.pool.query<{ code: string }>(
      `SELECT b.entity_code AS code FROM birth_registry b WHERE b.collection_name = 'dot_tools'
          AND b.entity_code ~ '^[A-Z]+-[0-9]+$' ORDER BY b.id LIMIT 1`);
    const code = c.rows[0]!.code;
    await db.pool.query(`INSERT INTO collection_registry (code, collection, name, _dot_origin) VALUES ($1, $2, $3, 'test')`,
      [code, `col_${code.toLowerCase()}`, `cross ${code}`]);
    const births = await db.pool.query<{ collection_name: string }>(
      `SELECT collection_name FROM birth_registry WHERE entity_code = $1 ORDER BY collection_name`, [code]);
    assert.deepEqual(births.rows.map((r) => r.collection_name), ['collection_registry', 'dot_tools']);
  });

  test('no-permit dot_tools insert is blocked', async () => {
    const code = newDotCode('plan-no-permit');
    const before = await admissionState(db.pool);
    await rejectsWith(db.pool.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, 'no permit', 'test')`, [code]),
      'BG403', /no birth permit exists/);
    assert.deepEqual(await admissionState(db.pool), before);
  });

  test('expired-permit dot_tools insert is blocked', async () => {
    const code = newDotCode('plan-expired');
    const permitId = await issuePermit(db.pool, code, { ttl: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const before = await admissionState(db.pool);
    await rejectsWith(db.pool.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, 'expired', 'test')`, [code]),
      'BG403', new RegExp(`permit ${permitId} expired`));
    assert.deepEqual(await admissionState(db.pool), before);
    // The sweep then records what the gate already enforced.
    const swept = await db.pool.query<{ n: number }>(`SELECT fn_permit_expire_due() AS n`);
    assert.ok(swept.rows[0]!.n >= 1);
    const p = await db.pool.query(`SELECT state FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
    assert.equal(p.rows[0].state, 'EXPIRED');
  });

  test('valid permit → row, permit FINALIZED, birth linked', async () => {
    const code = newDotCode('plan-valid');
    const permitId = await issuePermit(db.pool, code);
    const ins = await db.pool.query<{ row_id: string; entity_code: string }>(
      `SELECT * FROM fn_admission_insert_dot_tools($1, $2)`, [permitId, { name: 'plan valid', _dot_origin: 'dot-birth-admit' }]);
    const rowId = ins.rows[0]!.row_id;
    assert.equal(ins.rows[0]!.entity_code, code);
    const p = await db.pool.query(`SELECT state, row_id, birth_id, finalized_at FROM birth_admission_permit WHERE permit_id = $1`, [permitId]);
    assert.equal(p.rows[0].state, 'FINALIZED');
    assert.equal(p.rows[0].row_id, rowId);
    assert.ok(p.rows[0].finalized_at);
    const b = await db.pool.query(`SELECT id, entity_id, jsonb_profile -> 'admission' ->> 'permit_id' AS permit FROM birth_registry
                                    WHERE entity_code = $1 AND collection_name = 'dot_tools'`, [code]);
    assert.equal(b.rowCount, 1);
    assert.equal(b.rows[0].id, p.rows[0].birth_id);
    assert.equal(b.rows[0].entity_id, rowId);
    assert.equal(b.rows[0].permit, permitId);
    const t = await db.pool.query(`SELECT coalesce(from_state, '-') || '>' || to_state AS move FROM birth_admission_permit_transition
                                    WHERE permit_id = $1 ORDER BY transition_id`, [permitId]);
    assert.deepEqual(t.rows.map((r) => r.move), ['->REQUESTED', 'REQUESTED>RESERVED', 'RESERVED>CONSUMED', 'CONSUMED>FINALIZED']);
    // A retry after a lost acknowledgement gets the committed row back, and nothing new is written.
    const again = await db.pool.query(`SELECT * FROM fn_admission_insert_dot_tools($1, $2)`, [permitId, { name: 'plan valid' }]);
    assert.deepEqual(again.rows, ins.rows);
    const rows = await db.pool.query(`SELECT count(*)::int AS n FROM dot_tools WHERE code = $1`, [code]);
    assert.equal(rows.rows[0].n, 1);
  });

  test('166 trigger bindings intact', async () => {
    const b = await db.pool.query<{ n: number; oids: string[] }>(
      `SELECT count(*)::int AS n, array_agg(DISTINCT tgfoid::text) AS oids FROM pg_trigger
        WHERE NOT tgisinternal AND tgfoid = 'fn_birth_registry_auto'::regproc`);
    assert.equal(entryBindings.n, figures.birthAutoTriggers); // 166, KB-2590 §4
    assert.equal(b.rows[0]!.n, figures.birthAutoTriggers);
    assert.deepEqual(b.rows[0]!.oids, [entryBindings.fnOid], 'OID-stable patch: every binding still calls the entry OID');
  });

  test('other families unaffected: no permit required where the flag is unset', async () => {
    const before = await db.pool.query(`SELECT count(*)::int AS n FROM birth_admission_permit`);
    const r = await db.pool.query<{ code: string }>(
      `INSERT INTO kb_articles (code, name, _dot_origin) VALUES ('KBA-990001', 'plan other family', 'test') RETURNING code`);
    const b = await db.pool.query(`SELECT collection_name FROM birth_registry WHERE entity_code = $1`, [r.rows[0]!.code]);
    assert.deepEqual(b.rows, [{ collection_name: 'kb_articles' }]);
    const after = await db.pool.query(`SELECT count(*)::int AS n FROM birth_admission_permit`);
    assert.equal(after.rows[0].n, before.rows[0].n);
  });

  test('RP guard still returns BLOCK dims, orphan 59 → 54 after the pivot births', async () => {
    const dims = await db.pool.query<Dim>('SELECT dim, block_count FROM fn_safety_block_dims()');
    const now = new Map(dims.rows.map((d) => [d.dim, Number(d.block_count)]));
    const { orphan_critical_active: entryOrphans } = figures.blockDims; // 59 = 54 + 5 (KB-35E7 §8)
    assert.equal(entryDims.get('orphan_critical_active'), entryOrphans);
    assert.equal(now.get('orphan_critical_active'), entryOrphans - figures.criticalOrphans.pivot_definitions);
    for (const dim of ['phantom_real', 'fs_file_no_registry', 'dot_pivot_update']) {
      assert.equal(now.get(dim), entryDims.get(dim), dim);
    }
    assert.equal(now.get('gate_drift'), 0);
    await rejectsWith(db.pool.query(`SELECT * FROM fn_assert_safe_for_dot_action('rp_cleanup')`), 'BG423',
      new RegExp(`orphan_critical_active=${entryOrphans - figures.criticalOrphans.pivot_definitions}`));
  });
});
