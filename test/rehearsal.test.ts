// The rollback-only rehearsal (KB-3A66): the whole packet in one BEGIN … ROLLBACK, the KB-7D57 test
// plan inside it, and the catalog left byte for byte as found — fingerprint and raw catalog rows.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadWorld } from '../fixtures/world.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { PACKET_LOCK } from '../packet/lock.ts';
import { defaultStepsRoot } from '../packet/steps.ts';
import { catalogRows, type CatalogRows } from '../rehearsal/catalog-rows.ts';
import { PLAN } from '../rehearsal/plan.ts';
import { rehearse } from '../rehearsal/rehearse.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';

const scratch = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'rehearsal-'));

describe('rehearsal on the test-scale world', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  let entryRows: CatalogRows;
  before(async () => {
    db = await freshDatabase('rehearsal');
    await loadWorld(db.pool, { scale: 'test' });
    entry = await catalogFingerprint(db.pool);
    entryRows = await catalogRows(db.pool);
  });
  after(async () => db?.dispose());

  test('every plan line passes and the catalog is left byte for byte as found', async () => {
    const base = path.join(scratch, 'kb-3a66');
    const r = await rehearse(db.pool, { report: `${base}.md` });
    assert.equal(r.status, 'PASS', r.blockers.engineering.join('\n'));
    assert.deepEqual(r.plan.map((p) => p.id), PLAN.map((p) => p.id));
    for (const p of r.plan) assert.equal(p.ok, true, `${p.line}: ${p.detail}`);
    assert.ok(r.feasibility.steps.every((s) => s.ran && s.ok), 'every step ran inside the transaction');

    // Entry hash == exit hash, re-checked here independently of the report.
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    assert.deepEqual(await catalogRows(db.pool), entryRows);
    assert.equal(r.entryExit.equal, true);
    assert.equal(r.liveMutation.verdict, 'NONE');
    assert.equal(r.entryExit.permitTableAbsentAfter, true);
    assert.deepEqual(r.entryExit.dotToolsUnborn, { entry: 0, exit: 0 });
    const ledger = await db.pool.query<{ n: string | null }>(`SELECT to_regnamespace('birthgate_ledger')::text AS n`);
    assert.equal(ledger.rows[0]!.n, null, 'the rehearsal writes no ledger');

    // Sequences are the one thing a ROLLBACK cannot undo; the report names them instead of hiding them.
    assert.ok(r.liveMutation.nonTransactional.some((s) => s.sequence === 'dot_tools_id_seq'));

    // The lock windows of the non-concurrent build and the USING INDEX promotion, with the modes held.
    assert.ok(r.composite.lockWindow.indexBuild && r.composite.lockWindow.indexBuild.ms > 0);
    assert.deepEqual(r.composite.lockWindow.indexBuild.locks, ['birth_registry:ShareLock']);
    assert.ok(r.composite.lockWindow.promotion?.locks.includes('birth_registry:AccessExclusiveLock'));
    assert.equal(r.composite.verdict, 'COMPOSITE_READY');
    assert.equal(r.permitTable.verdict, 'PROVEN / APPROVE');
    assert.equal(r.finalizeTrigger.verdict, 'PROVEN / APPROVE');
    assert.ok(r.finalizeTrigger.enableAlways.length >= 6, "gate, consume, three guards, finalize (and the baselines' append-only guards)");
    assert.deepEqual(new Set(r.finalizeTrigger.enableAlways.map((t) => t.enabled)), new Set(['A']));

    // Both formats, from the same report.
    assert.deepEqual(r.files, [`${base}.md`, `${base}.json`]);
    const json = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8')) as typeof r;
    assert.equal(json.status, 'PASS');
    assert.equal(json.entryExit.entryHash, r.entryExit.exitHash);
    const md = fs.readFileSync(`${base}.md`, 'utf8');
    for (const heading of ['## 1. Live mutation', '## 2. Entry hash == exit hash', '## 3. dot_tools pilot feasibility',
      '## 4. Composite-unique decision', '## 5. Permit-table decision', '## 6. Finalize-trigger decision', '## 8. Blockers']) {
      assert.ok(md.includes(heading), `markdown has "${heading}"`);
    }
    assert.match(md, /## 1\. Live mutation\n\n\*\*NONE\.\*\*/);
    assert.match(md, /## 2\. Entry hash == exit hash\n\n\*\*YES\.\*\*/);
    assert.match(md, /Owner DDL approval/);
  });

  test('a failing step makes the rehearsal FAIL and still leaves nothing behind', async () => {
    const root = fs.mkdtempSync(path.join(scratch, 'packet-'));
    fs.cpSync(defaultStepsRoot, root, { recursive: true });
    fs.writeFileSync(path.join(root, '10-deferred-finalize', 'up.sql'),
      `DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'injected step-10 failure'; END $$;`);
    const r = await rehearse(db.pool, { stepsRoot: root });
    assert.equal(r.status, 'FAIL');
    assert.equal(r.feasibility.verdict, 'NOT_PROVEN');
    assert.match(r.blockers.engineering.join('\n'), /step 10 failed: P0001 injected step-10 failure/);
    assert.deepEqual(r.plan, [], 'no plan line runs on a half-applied packet');
    assert.equal(r.entryExit.equal, true);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    assert.deepEqual(await catalogRows(db.pool), entryRows);
  });

  test('a rehearsal is refused while an applier holds the packet lock', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('SELECT pg_advisory_lock($1, $2)', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
      await assert.rejects(rehearse(db.pool), (err) => err instanceof PacketError && err.code === PacketFailure.Busy);
    } finally {
      await c.query('SELECT pg_advisory_unlock($1, $2)', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
      c.release();
    }
  });
});
