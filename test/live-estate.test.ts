// Issue 9 item 5: KB-7D57 steps 4 and 5 on a live estate, whose birth functions are not the project's
// reconstruction (production's md5s are KB-2590 §4's, not sql/baseline's). The world here replaces both
// with harmless variants (comments, layout, an extra no-op statement, a COST, a revoked PUBLIC EXECUTE):
// the runner captures them, derives each patch from the live body, and the rollback brings back the
// captured bodies — live md5s equal to the entry md5s. A body of another shape, an ambiguous anchor,
// or a body other than the one the owner reviewed is refused (BG428) with nothing changed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { readSql } from '../db/sql-files.ts';
import { applyPacket, rollbackPacket } from '../packet/apply.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { readLiveBodies, readRun } from '../packet/ledger.ts';
import { KB_2590_ENTRY_MD5 } from '../packet/live-bodies.ts';
import { applyStep, rollbackStep, verifyStep } from '../packet/step-runner.ts';
import { collectFacts } from '../rehearsal/rehearse.ts';
import { asDirectus } from './support/attacker.ts';
import type { FreshDatabase } from './support/db.ts';
import { applyStep as applyStepSql } from './support/packet-sql.ts';
import { rejectsWith, worldDatabase } from './support/packet-world.ts';

const reportDir = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'live-estate-'));

// Production's fn_birth_registry_auto as this world has it: the reconstruction's logic with ops'
// comments (one with an apostrophe, one block), another layout, a string holding `--`, a no-op
// statement and a COST. The entry drift check still finds its entry conflict target (KB-2590 §3).
const FOREIGN_AUTO = `CREATE OR REPLACE FUNCTION public.fn_birth_registry_auto() RETURNS trigger
LANGUAGE plpgsql COST 150 AS $fn$
-- ops 2025-11 (OPS-771): hot-patched on prod, don't edit by hand
DECLARE
\tv_row jsonb := to_jsonb(NEW);
\tv_code text := v_row ->> coalesce(TG_ARGV[0], 'code');
\tv_species text; v_level text; v_role text; v_id_fld text; v_nm_fld text;
BEGIN
\tIF v_code IS NULL OR btrim(v_code) = '' THEN RETURN NULL; END IF;
\t/* skip a code this collection already has; the backstop below is only for races */
\tIF EXISTS (SELECT 1 FROM birth_registry br WHERE br.entity_code = v_code
\t            AND br.collection_name = TG_TABLE_NAME) THEN
\t\tRETURN NULL;
\tEND IF;
\tRAISE DEBUG 'birth -- % in %', v_code, TG_TABLE_NAME;
\tSELECT mc.default_species, mc.composition_level, mc.governance_role, mc.id_field, mc.name_field
\t  INTO v_species, v_level, v_role, v_id_fld, v_nm_fld
\t  FROM meta_catalog mc WHERE mc.collection_name = TG_TABLE_NAME;
\tINSERT INTO birth_registry (entity_code, collection_name, species_code, composition_level, governance_role,
\t                            dot_origin, entity_id, entity_name, birth_method, birth_trigger, jsonb_profile)
\tVALUES (v_code, TG_TABLE_NAME, coalesce(v_row ->> 'species_code', v_species), v_level, v_role,
\t        v_row ->> '_dot_origin', (v_row ->> coalesce(v_id_fld, 'id'))::bigint,
\t        v_row ->> coalesce(v_nm_fld, 'name'), 'trigger', TG_NAME,
\t        jsonb_build_object('op', TG_OP, 'table', TG_TABLE_NAME))
\tON CONFLICT (entity_code) DO NOTHING;
\tPERFORM 1; -- no-op left by a debugging session
\tRETURN NULL;
END
$fn$`;

// Production's fn_birth_registry_auto_id: comments, layout, a no-op; PUBLIC's EXECUTE revoked by ops.
const foreignAutoId = (extra = '') => `CREATE OR REPLACE FUNCTION public.fn_birth_registry_auto_id() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_row jsonb := to_jsonb(NEW);
  v_id text := v_row ->> coalesce(TG_ARGV[0], 'id');  -- id-keyed families (pivot_results, …)
  v_species text;
  v_level text;
  v_role text;
BEGIN
  IF v_id IS NULL THEN
      RETURN NULL;
  END IF;
${extra}
  SELECT mc.default_species, mc.composition_level, mc.governance_role INTO v_species, v_level, v_role
    FROM meta_catalog mc WHERE mc.collection_name = TG_TABLE_NAME;
  PERFORM NULL;
  INSERT INTO birth_registry (entity_code, collection_name, species_code, composition_level, governance_role,
                              dot_origin, entity_id, birth_method, birth_trigger, jsonb_profile)
  VALUES (TG_TABLE_NAME || ':' || v_id, TG_TABLE_NAME, v_species, v_level, v_role,
          v_row ->> '_dot_origin', v_id::bigint, 'trigger', TG_NAME,
          jsonb_build_object('op', TG_OP, 'table', TG_TABLE_NAME, 'keyed_by', 'id'))
  ON CONFLICT (entity_code) DO NOTHING;
  RETURN NULL;
END
$fn$`;

async function foreignBodies(q: Pick<pg.Pool, 'query'>): Promise<void> {
  await q.query(FOREIGN_AUTO);
  await q.query(foreignAutoId());
  await q.query('REVOKE EXECUTE ON FUNCTION public.fn_birth_registry_auto_id() FROM PUBLIC');
}

type FnState = { proname: string; oid: string; md5: string; prosrc: string; prosecdef: boolean; proconfig: string[] | null; procost: number; public_execute: boolean };
const fnStateSql = `SELECT proname, oid::text, md5(pg_get_functiondef(oid)) AS md5, prosrc, prosecdef, proconfig, procost::float8 AS procost,
                           has_function_privilege('public', oid, 'EXECUTE') AS public_execute
                      FROM pg_proc WHERE pronamespace = 'public'::regnamespace
                       AND proname IN ('fn_birth_registry_auto', 'fn_birth_registry_auto_id') ORDER BY proname`;
async function fnState(q: Pick<pg.Pool, 'query'>): Promise<Record<string, FnState>> {
  const r = await q.query<FnState>(fnStateSql);
  return Object.fromEntries(r.rows.map((x) => [x.proname, x]));
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

const COMPOSITE = 'ON CONFLICT (entity_code, collection_name) DO NOTHING';
const GUARD = `\n\n  IF EXISTS (SELECT 1 FROM birth_registry br
             WHERE br.entity_code = TG_TABLE_NAME || ':' || v_id AND br.collection_name = TG_TABLE_NAME) THEN
    RETURN NULL;
  END IF;`;

describe('steps 4 and 5 on an estate whose birth functions are its own', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  let entryFns: Record<string, FnState>;
  before(async () => {
    db = await worldDatabase('live_estate');
    await foreignBodies(db.pool);
    entry = await catalogFingerprint(db.pool);
    entryFns = await fnState(db.pool);
  });
  after(async () => db?.dispose());

  test('the rehearsal derives steps 4 and 5 from the live bodies and leaves them as found', async () => {
    const facts = await collectFacts(db.pool, { through: 6 });
    assert.equal(facts.failure, undefined, facts.failure);
    for (const k of [4, 5, 6]) assert.equal(facts.steps.find((s) => s.step === k)?.ok, true, `step ${k} rehearsed`);
    assert.deepEqual(await fnState(db.pool), entryFns);
  });

  test('apply through 6 patches production\'s bodies, not ours; rollback to 0 brings back the entry md5s', async () => {
    assert.notEqual(entryFns.fn_birth_registry_auto!.md5, KB_2590_ENTRY_MD5.fn_birth_registry_auto);
    const r = await applyPacket(db.pool, { through: 6, reportDir });
    assert.deepEqual(r.steps.map((s) => [s.step, s.action]), [[1, 'up'], [2, 'up'], [3, 'up'], [4, 'up'], [5, 'up'], [6, 'up']]);

    // Exactly the reviewed edits on the live text: every comment, the layout, the no-op and the COST stay.
    const patched = await fnState(db.pool);
    const auto = patched.fn_birth_registry_auto!;
    const autoId = patched.fn_birth_registry_auto_id!;
    assert.equal(auto.prosrc, entryFns.fn_birth_registry_auto!.prosrc.replace('ON CONFLICT (entity_code) DO NOTHING', COMPOSITE));
    const idEntry = entryFns.fn_birth_registry_auto_id!.prosrc;
    const anchorEnd = idEntry.indexOf('  END IF;\n') + '  END IF;'.length;
    assert.equal(autoId.prosrc, (idEntry.slice(0, anchorEnd) + GUARD + idEntry.slice(anchorEnd)).replace('ON CONFLICT (entity_code) DO NOTHING', COMPOSITE));
    for (const [name, f] of Object.entries(patched)) {
      assert.equal(f.oid, entryFns[name]!.oid, `${name} keeps its OID (its trigger bindings)`);
      assert.deepEqual([f.prosecdef, f.proconfig, f.public_execute], [true, ['search_path=public, pg_temp'], false], name);
    }
    assert.equal(auto.procost, 150, 'the live COST is kept');

    // The ledger holds what was live at entry, and what the up left.
    const captured = await readLiveBodies(db.pool, r.runId);
    assert.deepEqual(captured.map((c) => [c.step, c.signature, c.oid, c.defMd5, c.patchedMd5]), [
      [4, 'public.fn_birth_registry_auto()', entryFns.fn_birth_registry_auto!.oid, entryFns.fn_birth_registry_auto!.md5, auto.md5],
      [5, 'public.fn_birth_registry_auto_id()', entryFns.fn_birth_registry_auto_id!.oid, entryFns.fn_birth_registry_auto_id!.md5, autoId.md5],
    ]);
    const md5s = await db.pool.query<{ a: string; b: string }>('SELECT md5($1::text) AS a, md5($2::text) AS b',
      [entryFns.fn_birth_registry_auto!.prosrc, entryFns.fn_birth_registry_auto_id!.prosrc]);
    assert.deepEqual(captured.map((c) => c.prosrcMd5), [md5s.rows[0]!.a, md5s.rows[0]!.b]);
    assert.deepEqual(captured.map((c) => c.acl), [null, '{directus=X/directus}'], 'the entry ACLs: the default one, and PUBLIC\'s EXECUTE revoked');

    const rb = await rollbackPacket(db.pool, { to: 0 });
    for (const k of [4, 5]) assert.match(rb.steps.find((s) => s.step === k)!.detail, /restored the body captured at entry \(capture \d+ of run \d+, md5 [0-9a-f]{32}\)/);
    assert.deepEqual(await fnState(db.pool), entryFns, 'the live md5s, OIDs, COST and ACLs are the entry ones');
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    assert.deepEqual((await readLiveBodies(db.pool, r.runId)).map((c) => c.restoredRunId), [rb.runId, rb.runId]);
  });

  test('apply and roll back again: the new run captures anew and restores its own capture', async () => {
    const r = await applyPacket(db.pool, { through: 5, reportDir });
    assert.equal((await readLiveBodies(db.pool, r.runId)).length, 2);
    await rollbackPacket(db.pool, { to: 0 });
    assert.deepEqual(await fnState(db.pool), entryFns);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('the estate owner cannot plant a body for the rollback to run: the ledger is not theirs', async () => {
    const directus = await asDirectus(db.url);
    try {
      await rejectsWith(directus.c.query(`UPDATE birthgate_ledger.live_body SET definition = 'DROP TABLE birth_registry'`), '42501', /permission denied for schema birthgate_ledger/);
      await rejectsWith(directus.c.query(`INSERT INTO birthgate_ledger.live_body (run_id, step, signature, fn_oid, owner, prosrc_md5, def_md5, definition)
                                          VALUES (1, 4, 'public.fn_birth_registry_auto()', 1, 'directus', '', '', 'x')`), '42501', /permission denied for schema birthgate_ledger/);
    } finally {
      await directus.end();
    }
  });

  test('a step applied without the runner has no capture: its rollback says it restored the reconstruction', async () => {
    await applyPacket(db.pool, { through: 3, reportDir });
    await applyStepSql(db.pool, 4);
    const out = await rollbackStep(db.pool, 4);
    assert.equal(out.action, 'down');
    assert.match(out.detail, /no captured entry body of public\.fn_birth_registry_auto\(\) for this apply in the ledger: restored the project's reconstruction/);
    const now = await fnState(db.pool);
    assert.notEqual(now.fn_birth_registry_auto!.md5, entryFns.fn_birth_registry_auto!.md5, 'the reconstruction is not the estate\'s body');
    assert.equal(now.fn_birth_registry_auto!.oid, entryFns.fn_birth_registry_auto!.oid);
    await rollbackPacket(db.pool, { to: 0 });
  });
});

describe('a live body the patch was not reviewed against is refused, nothing changed', () => {
  let db: FreshDatabase;
  before(async () => {
    db = await worldDatabase('live_estate_shape');
    // No composite EXISTS guard: step 4 relies on it (KB-7D57 "the EXISTS guard was already composite").
    await db.pool.query(FOREIGN_AUTO.replace(/\tIF EXISTS \(SELECT 1 FROM birth_registry br WHERE br\.entity_code = v_code\n\t\s+AND br\.collection_name = TG_TABLE_NAME\) THEN\n\t\tRETURN NULL;\n\tEND IF;\n/, ''));
    await db.pool.query(foreignAutoId());
  });
  after(async () => db?.dispose());

  test('apply stops at step 4 (BG428) when the guard it relies on is missing, rolls back 3..1 and proves the entry; the function is untouched', async () => {
    const before = await fnState(db.pool);
    const entry = await catalogFingerprint(db.pool);
    assert.doesNotMatch(before.fn_birth_registry_auto!.prosrc, /EXISTS/);
    const err = await rejectsPacket(applyPacket(db.pool, { through: 6, reportDir }), PacketFailure.Precondition);
    assert.equal(err.sqlstate, 'BG428');
    assert.equal(err.step, 4);
    // Not the door's designed stop: a refusal before the door is a failure, rolled back like any other.
    assert.match(err.message, /step 4: fn_birth_registry_auto has no composite EXISTS guard .* nothing changed.*; rolled back 3, 2, 1 — catalog back at the entry fingerprint/);
    assert.deepEqual(await fnState(db.pool), before);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    assert.equal((await verifyStep(db.pool, 4)).ok, false);
    const run = await readRun(db.pool, err.runId!);
    assert.equal(run.status, 'rolled_back');
    assert.deepEqual(run.steps.filter((s) => s.step === 4).map((s) => [s.action, s.status, s.sqlstate]), [['up', 'refused', 'BG428']]);
    const captured = await readLiveBodies(db.pool, err.runId);
    assert.deepEqual(captured.map((c) => [c.step, c.defMd5, c.patchedMd5]), [[4, before.fn_birth_registry_auto!.md5, null]]);
  });

  test('an anchor that also appears in a comment is ambiguous: step 5 refuses (BG428) and the catalog is unchanged', async () => {
    await db.pool.query(FOREIGN_AUTO);
    await applyStep(db.pool, 4);
    await db.pool.query(foreignAutoId('  -- the backstop used to read ON CONFLICT (entity_code) DO NOTHING, see below\n'));
    const fp = await catalogFingerprint(db.pool);
    const err = await rejectsPacket(applyStep(db.pool, 5), PacketFailure.Precondition);
    assert.match(err.message, /must occur exactly once in fn_birth_registry_auto_id, in its code and nowhere else: found 1 in the code, 2 in the whole text/);
    assert.deepEqual(await catalogFingerprint(db.pool), fp);
  });

  test('a body other than the one the owner reviewed is refused; the reviewed one is applied', async () => {
    await db.pool.query(foreignAutoId());
    const fp = await catalogFingerprint(db.pool);
    const live = (await fnState(db.pool)).fn_birth_registry_auto_id!.md5;
    const err = await rejectsPacket(applyStep(db.pool, 5, { expectLiveMd5: KB_2590_ENTRY_MD5 }), PacketFailure.Precondition);
    assert.match(err.message, new RegExp(`step 5: live md5\\(pg_get_functiondef\\(fn_birth_registry_auto_id\\)\\) is ${live}, the owner expects 3f3515dedf1d5bb0f0f66711297b5b5c`));
    assert.deepEqual(await catalogFingerprint(db.pool), fp);
    await rejectsPacket(applyStep(db.pool, 5, { expectLiveMd5: { fn_birth_registry_auto_id: 'not-an-md5' } }), PacketFailure.BadRequest);
    assert.equal((await applyStep(db.pool, 5, { expectLiveMd5: { fn_birth_registry_auto_id: live } })).action, 'up');
    const captured = (await readLiveBodies(db.pool)).filter((c) => c.step === 5);
    assert.deepEqual(captured.at(-1)!.expectedMd5, live);
  });

  test('the up edits only the body the runner captured: a body changed after the capture is refused', async () => {
    await rollbackStep(db.pool, 5);
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SELECT set_config('birthgate.live_body_md5', md5('another body'), true)`);
      const up = readSql('apply/05-patch-fn-birth-registry-auto-id/up.sql');
      await rejectsWith(c.query(up), 'BG428', /step 5: fn_birth_registry_auto_id changed since the runner captured it/);
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
    assert.equal((await verifyStep(db.pool, 5)).ok, false);
  });

  test('a refused attempt\'s capture is never the body a rollback restores', async () => {
    // Step 4 stands applied from the body captured then; its patch drifts (the pinned search_path reset by hand).
    const applied = (await readLiveBodies(db.pool)).filter((c) => c.step === 4 && c.patchedMd5 !== null).at(-1)!;
    await db.pool.query('ALTER FUNCTION public.fn_birth_registry_auto() RESET search_path');
    assert.equal((await verifyStep(db.pool, 4)).ok, false);
    const err = await rejectsPacket(applyStep(db.pool, 4), PacketFailure.Precondition);
    assert.match(err.message, /step 4: fn_birth_registry_auto is not the entry shape .*security definer yes, config none; nothing changed/);
    const refused = (await readLiveBodies(db.pool)).at(-1)!;
    assert.deepEqual([refused.step, refused.patchedMd5], [4, null]);
    assert.notEqual(refused.defMd5, applied.defMd5);
    // Put right by hand; the rollback must bring back the entry body, not the drifted one it refused.
    await db.pool.query('ALTER FUNCTION public.fn_birth_registry_auto() SET search_path = public, pg_temp');
    assert.equal((await verifyStep(db.pool, 4)).ok, true);
    const out = await rollbackStep(db.pool, 4);
    assert.match(out.detail, new RegExp(`restored the body captured at entry \\(capture ${applied.captureId} `));
    assert.equal((await fnState(db.pool)).fn_birth_registry_auto!.md5, applied.defMd5);
  });
});
