// The rollback-only rehearsal (KB-3A66): the whole packet in one BEGIN … ROLLBACK, the KB-7D57 test
// plan inside it, and the catalog left byte for byte as found — fingerprint and raw catalog rows.
// Issue 9 item 6: all of it on an exact clone built inside the transaction, so the live objects see at
// most ACCESS SHARE and a concurrent birth_registry writer never waits on the rehearsal; a step that
// takes more on a live object is refused at once; a schema the clone cannot reproduce is refused
// before any step; code the estate owner planted never runs as the rehearsal's superuser; an estate
// the packet is already applied to (its event triggers live) is cloned as well. Lock modes are
// asserted here; the stall in milliseconds is the bench's (`npm run bench -- packet`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadWorld } from '../fixtures/world.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { catalogPart } from '../packet/drift.ts';
import { PACKET_LOCK } from '../packet/lock.ts';
import { defaultStepsRoot } from '../packet/steps.ts';
import { catalogRows, type CatalogRows } from '../rehearsal/catalog-rows.ts';
import { lockRank } from '../rehearsal/live-locks.ts';
import { PLAN } from '../rehearsal/plan.ts';
import { rehearse } from '../rehearsal/rehearse.ts';
import { asDirectus } from './support/attacker.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';
import { applyStepsSql } from './support/packet-sql.ts';

const scratch = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'rehearsal-'));

/** Tables of schema public, by name: what the clone must have read (and only read). */
async function liveTables(pool: pg.Pool): Promise<string[]> {
  const r = await pool.query<{ t: string }>(`SELECT format('public.%I', relname) AS t FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1`);
  return r.rows.map((x) => x.t);
}

/**
 * A birth_registry writer, and beside it a watcher of its own (not the rehearsal's): every lock any
 * other backend holds on the live birth_registry and dot_tools (by OID, read before the rehearsal
 * renames anything), and every backend the writer waits on.
 */
async function writerAndWatcher(url: string) {
  const writer = new pg.Client({ connectionString: url, application_name: 'test-birth-writer' });
  const watcher = new pg.Client({ connectionString: url, application_name: 'test-lock-watcher' });
  await writer.connect();
  await watcher.connect();
  const oids = (await watcher.query<{ br: number; dt: number }>(`SELECT 'public.birth_registry'::regclass::oid::int AS br, 'public.dot_tools'::regclass::oid::int AS dt`)).rows[0]!;
  const writerPid = (await writer.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  const seen = new Map<string, Set<string>>([['birth_registry', new Set()], ['dot_tools', new Set()]]);
  const waitedOn = new Set<number>();
  let inserts = 0;
  let samples = 0;
  let stop = false;
  const writing = (async () => {
    for (let i = 0; !stop; i++) {
      await writer.query(`INSERT INTO birth_registry (entity_code, collection_name, birth_method) VALUES ($1, 'dot_tools', 'test-writer')`, [`TEST-W-${i}`]);
      inserts++;
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const watching = (async () => {
    while (!stop) {
      const r = await watcher.query<{ rel: number; mode: string }>(
        // Client backends only: the writer's inserts wake autovacuum, whose SHARE UPDATE EXCLUSIVE is not the rehearsal's.
        `SELECT l.relation::int AS rel, l.mode FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid AND a.backend_type = 'client backend'
          WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.relation = ANY ($1::oid[]) AND l.granted AND l.pid NOT IN ($2, pg_backend_pid())`, [[oids.br, oids.dt], writerPid]);
      for (const x of r.rows) seen.get(x.rel === oids.br ? 'birth_registry' : 'dot_tools')!.add(x.mode);
      const b = await watcher.query<{ pids: number[] }>('SELECT pg_blocking_pids($1) AS pids', [writerPid]);
      for (const p of b.rows[0]!.pids) waitedOn.add(p);
      samples++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  return {
    async stop() {
      stop = true;
      await Promise.all([writing, watching]);
      await writer.query(`DELETE FROM birth_registry WHERE birth_method = 'test-writer'`);
      await writer.end();
      await watcher.end();
      return { seen, waitedOn, inserts, samples };
    },
    get inserts() { return inserts; },
  };
}

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

  test('every plan line passes on the clone and the catalog is left byte for byte as found', async () => {
    const base = path.join(scratch, 'kb-3a66');
    const r = await rehearse(db.pool, { report: `${base}.md` });
    assert.equal(r.status, 'PASS', r.blockers.engineering.join('\n'));
    assert.deepEqual(r.plan.map((p) => p.id), PLAN.map((p) => p.id));
    for (const p of r.plan) assert.equal(p.ok, true, `${p.line}: ${p.detail}`);
    assert.ok(r.feasibility.steps.every((s) => s.ran && s.ok), 'every step ran inside the transaction');

    // The clone was the live state: every table, all rows, the same fingerprint (OIDs aside).
    assert.equal(r.clone.verdict, 'EXACT');
    assert.equal(r.clone.fidelity?.cloneHash, r.clone.fidelity?.liveHash);
    const tables = await liveTables(db.pool);
    assert.equal(r.clone.summary?.tables, tables.length);
    const rows = await db.pool.query<{ n: string }>(
      `SELECT sum((xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM public.%I', relname), false, true, '')))[1]::text::bigint)::text AS n
         FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'`);
    assert.equal(r.clone.summary?.rows, Number(rows.rows[0]!.n), 'every row of every table copied');

    // Entry hash == exit hash, re-checked here independently of the report.
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    assert.deepEqual(await catalogRows(db.pool), entryRows);
    assert.equal(r.entryExit.equal, true);
    assert.equal(r.liveMutation.verdict, 'NONE');
    assert.equal(r.entryExit.permitTableAbsentAfter, true);
    assert.deepEqual(r.entryExit.dotToolsUnborn, { entry: 0, exit: 0 });
    const ledger = await db.pool.query<{ n: string | null }>(`SELECT to_regnamespace('birthgate_ledger')::text AS n`);
    assert.equal(ledger.rows[0]!.n, null, 'the rehearsal writes no ledger');
    const leftover = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'bg\\_rehearsal\\_live\\_%'`);
    assert.equal(leftover.rows[0]!.n, 0, 'the rename of the live schema was rolled back');

    // A ROLLBACK cannot undo a sequence: the smoke test's and the plan's nextvals fell on the clone's.
    assert.deepEqual(r.liveMutation.nonTransactional, []);

    // The lock windows of the non-concurrent build and the USING INDEX promotion, with the modes held —
    // on the clone; the live birth_registry was only ever read.
    assert.ok(r.composite.lockWindow.indexBuild && r.composite.lockWindow.indexBuild.ms > 0);
    assert.deepEqual(r.composite.lockWindow.indexBuild.locks, ['birth_registry:ShareLock']);
    assert.ok(r.composite.lockWindow.promotion?.locks.includes('birth_registry:AccessExclusiveLock'));
    assert.equal(r.liveLocks.verdict, 'ACCESS_SHARE_AT_MOST');
    assert.deepEqual(r.liveLocks.stronger, []);
    assert.equal(r.writeBlockingMs, 0);
    const read = new Map(r.liveLocks.objects.map((o) => [o.object, o.mode]));
    for (const t of tables) assert.equal(read.get(t), 'AccessShareLock', `${t} was read for the clone, nothing more`);
    assert.ok(r.liveLocks.samples > 0, 'the lock sampler ran');
    assert.deepEqual(r.liveLocks.blocked, []);
    // The one stronger lock that cannot be avoided, named: step 1's CREATE/ALTER ROLE on the cluster's
    // role catalogs (roles are cluster-wide: no clone), held to the ROLLBACK; births never touch them.
    for (const c of r.liveLocks.catalogs) assert.match(c.catalog, /^pg_auth(id|_members)$/, `${c.catalog} ${c.mode}`);

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
    assert.equal(json.liveLocks.objects.find((o) => o.object === 'public.birth_registry')?.mode, 'AccessShareLock');
    const md = fs.readFileSync(`${base}.md`, 'utf8');
    for (const heading of ['## 1. Live mutation', '## 2. Entry hash == exit hash', '## 3. dot_tools pilot feasibility',
      '## 4. Composite-unique decision', '## 5. Permit-table decision', '## 6. Finalize-trigger decision', '## 8. Blockers',
      '## 9. Where it ran: the clone and the live estate']) {
      assert.ok(md.includes(heading), `markdown has "${heading}"`);
    }
    assert.match(md, /## 1\. Live mutation\n\n\*\*NONE\.\*\*/);
    assert.match(md, /Live locks: \*\*ACCESS SHARE at most\*\*/);
    assert.match(md, /## 2\. Entry hash == exit hash\n\n\*\*YES\.\*\*/);
    assert.match(md, /\*\*Clone EXACT\.\*\*/);
    assert.match(md, /\| AccessShareLock \| table \| [^|]*\bbirth_registry\b/);
    assert.match(md, /Owner DDL approval/);
  });

  test('a concurrent birth_registry writer never waits on the rehearsal: live tables see ACCESS SHARE only', async () => {
    const w = await writerAndWatcher(db.url);
    const run = (async () => {
      while (w.inserts < 5) await new Promise((res) => setTimeout(res, 5));
      const first = w.inserts;
      const report = await rehearse(db.pool);
      return { report, during: w.inserts - first };
    })();
    // The writer and the watcher stop whatever the rehearsal did.
    const outcome = await run.then((x) => ({ ok: true as const, ...x }), (err: unknown) => ({ ok: false as const, err }));
    const seen = await w.stop();
    if (!outcome.ok) throw outcome.err;
    const { report: r, during } = outcome;
    assert.equal(r.status, 'PASS', r.blockers.engineering.join('\n'));
    // The watcher, independently of the rehearsal's own tracking: on the live tables nobody but the
    // writer held more than ACCESS SHARE, while the clone's birth_registry went through SHARE and
    // ACCESS EXCLUSIVE; the writer never waited on another backend.
    assert.deepEqual([...seen.seen.get('birth_registry')!], ['AccessShareLock'], 'the rehearsal was seen reading the live birth_registry, and only that');
    for (const m of seen.seen.get('dot_tools')!) assert.ok(lockRank(m) <= lockRank('AccessShareLock'), `live dot_tools held in ${m}`);
    assert.ok(r.composite.lockWindow.promotion?.locks.includes('birth_registry:AccessExclusiveLock'));
    assert.deepEqual([...seen.waitedOn], [], 'the writer never waited on a lock');
    assert.ok(seen.samples > 0 && during > 0, `the writer went on inserting during the rehearsal (${during} inserts, ${seen.samples} samples)`);
    assert.deepEqual(r.liveLocks.blocked, [], 'the rehearsal saw no session wait on it either');
    assert.equal(r.liveLocks.verdict, 'ACCESS_SHARE_AT_MOST');
    // The writer's births advanced the live sequence; the report does not lay that on the rehearsal.
    assert.deepEqual(r.liveMutation.nonTransactional, []);
    assert.ok(r.liveMutation.movedByOthers.some((x) => x.sequence === 'birth_registry_id_seq'));

    // The clone is one snapshot: the writer's concurrent births are not in it, yet it equals the live
    // state as of that snapshot; the live catalog is as found (row counts aside: the writer's).
    assert.equal(r.clone.verdict, 'EXACT');
    assert.deepEqual(catalogPart(await catalogFingerprint(db.pool)), catalogPart(entry));
  });

  test('a step that takes more than ACCESS SHARE on a live object is refused at once, and nothing is left behind', async () => {
    const root = fs.mkdtempSync(path.join(scratch, 'packet-'));
    fs.cpSync(defaultStepsRoot, root, { recursive: true });
    // A step escaping the clone: it finds the live schema under its in-transaction name.
    const up = path.join(root, '09-permit-gate', 'up.sql');
    fs.writeFileSync(up, `DO $$ DECLARE v text; BEGIN
  SELECT format('%I.dot_tools', nspname) INTO v FROM pg_namespace WHERE nspname LIKE 'bg\\_rehearsal\\_live\\_%';
  EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v);
END $$;
${fs.readFileSync(up, 'utf8')}`);
    const r = await rehearse(db.pool, { stepsRoot: root });
    assert.equal(r.status, 'FAIL');
    assert.match(r.blockers.engineering.join('\n'), /step 9 took ShareRowExclusiveLock on live public\.dot_tools: the rehearsal only reads live objects; refused/);
    assert.deepEqual(r.liveLocks.stronger, [{ object: 'public.dot_tools', kind: 'table', mode: 'ShareRowExclusiveLock' }]);
    assert.equal(r.liveLocks.verdict, 'STRONGER_LOCK_TAKEN');
    assert.deepEqual(r.feasibility.steps.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'nothing after the refused step');
    assert.deepEqual(r.plan, []);
    assert.ok(r.writeBlockingMs > 0, 'the window in which live writers could wait is reported');
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
    assert.deepEqual(await catalogRows(db.pool), entryRows);
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

  test('a schema the clone cannot reproduce is refused before any step, loudly', async () => {
    await db.pool.query(`CREATE TYPE public.bg_rehearsal_test_mood AS ENUM ('calm', 'loud')`);
    try {
      const typed = await catalogRows(db.pool);
      const r = await rehearse(db.pool);
      assert.equal(r.status, 'FAIL');
      assert.equal(r.clone.verdict, 'NOT_BUILT');
      assert.match(r.blockers.engineering.join('\n'), /does not reproduce, so nothing was rehearsed: type public\.bg_rehearsal_test_mood \(e\)$/);
      assert.deepEqual(r.feasibility.steps, []);
      assert.deepEqual(await catalogRows(db.pool), typed);
    } finally {
      await db.pool.query('DROP TYPE public.bg_rehearsal_test_mood');
    }
  });

  test('code the estate owner planted in public never runs as the superuser while the clone is built', async () => {
    // SECURITY.md, the attacker being directus (who may CREATE in public): the rehearsal is a superuser
    // re-creating directus's objects. A CHECK and an expression index that run directus's function on
    // every row: the copy, the index build and ANALYZE must run it as directus, never as the superuser.
    await db.pool.query('GRANT CREATE ON SCHEMA public TO directus');
    const d = await asDirectus(db.url);
    try {
      await d.c.query(`CREATE FUNCTION public.bg_rehearsal_probe(x text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN
          IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
            RAISE EXCEPTION USING ERRCODE = 'BGX01', MESSAGE = format('estate code ran as superuser %s', current_user);
          END IF;
          RETURN x IS NOT NULL;
        END $$`);
      await d.c.query(`CREATE TABLE public.bg_rehearsal_probe_rows (x text CHECK (public.bg_rehearsal_probe(x)))`);
      await d.c.query(`INSERT INTO public.bg_rehearsal_probe_rows VALUES ('a'), ('b')`);
      await d.c.query(`CREATE INDEX bg_rehearsal_probe_idx ON public.bg_rehearsal_probe_rows (public.bg_rehearsal_probe(x))`);
      // The probe can fail: run by a superuser, it refuses.
      await assert.rejects(db.pool.query(`SELECT public.bg_rehearsal_probe('a')`), /estate code ran as superuser/);

      const r = await rehearse(db.pool);
      assert.equal(r.status, 'PASS', r.blockers.engineering.join('\n'));
      assert.equal(r.clone.verdict, 'EXACT');
      assert.equal(r.liveLocks.objects.find((o) => o.object === 'public.bg_rehearsal_probe_rows')?.mode, 'AccessShareLock');
    } finally {
      await d.c.query('DROP TABLE IF EXISTS public.bg_rehearsal_probe_rows');
      await d.c.query('DROP FUNCTION IF EXISTS public.bg_rehearsal_probe(text)');
      await d.end();
      await db.pool.query('REVOKE CREATE ON SCHEMA public FROM directus');
    }
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

  // Last: it applies the packet to this database for good.
  test('on an estate already applied through step 16, its live event triggers and packet tables are cloned too; 17 and 18 are rehearsed on the clone', async () => {
    const ddlLedgerRows = async () => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM birth_ddl_ledger')).rows[0]!.n;
    await applyStepsSql(db.pool, 16);
    const applied = await catalogFingerprint(db.pool);
    const ledgerRows = await ddlLedgerRows();
    const r = await rehearse(db.pool);
    assert.equal(r.status, 'PASS', r.blockers.engineering.join('\n'));
    assert.equal(r.clone.verdict, 'EXACT');
    // Live event triggers (the DDL ledger's among them) are paused while the clone is built, then fire
    // on the steps' DDL as they would in the apply — writing the clone's ledger.
    assert.ok(r.clone.summary!.eventTriggersPaused.includes('trg_birthgate_ddl_ledger'));
    assert.deepEqual(r.feasibility.steps.filter((s) => s.ran).map((s) => s.step), [17, 18]);
    for (const p of r.plan) assert.equal(p.ok, true, `${p.line}: ${p.detail}`);
    assert.equal(r.liveLocks.verdict, 'ACCESS_SHARE_AT_MOST');
    const read = new Map(r.liveLocks.objects.map((o) => [o.object, o.mode]));
    assert.equal(read.get('public.birth_admission_permit'), 'AccessShareLock');
    assert.equal(read.get('public.birth_ddl_ledger'), 'AccessShareLock');
    assert.deepEqual(catalogPart(await catalogFingerprint(db.pool)), catalogPart(applied));
    assert.equal(await ddlLedgerRows(), ledgerRows, 'the DDL the rehearsal recorded went into the clone\'s ledger, rolled back with it');
  });
});
