// The fixture generator: the test world holds exactly what it declares (fixtures/figures.ts), the
// defects sit where KB-35E7 §8 puts them, a second load is refused, --force rebuilds cleanly — also
// over an estate the packet was applied to (issue 9 item 4): the packet ledger of the dropped estate is
// archived and said so, nothing of the packet is left behind, and the next apply is applied.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { installBaseline } from '../fixtures/baseline.ts';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import { loadWorld, WorldBusyError, WorldExistsError, type WorldProgress } from '../fixtures/world.ts';
import { applyPacket, entryCheck, type ApplyResult } from '../packet/index.ts';
import { PACKET_LOCK } from '../packet/lock.ts';
import { probeEntryState } from '../probes/entry-state.ts';
import { compareWithFigures } from '../probes/figures-check.ts';
import { runCli } from './support/cli.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';

const figures = WORLD_FIGURES.test;
let db: FreshDatabase;
const progress: WorldProgress[] = [];

before(async () => {
  db = await freshDatabase('world');
  await loadWorld(db.pool, { scale: 'test', onProgress: (p) => progress.push(p) });
});
after(async () => {
  await db?.dispose();
});

async function one<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await db.pool.query<T>(sql, params);
  assert.ok(rows[0], `no row from ${sql}`);
  return rows[0];
}

/**
 * A digest of the world's content: equal digests = the same world, row for row. The baseline's own
 * meta_catalog rows are born by their trigger at install time, so only their born_at is left out.
 */
async function digest(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ d: string }>(`
    SELECT md5(
      (SELECT string_agg(concat_ws('|', id, entity_code, collection_name, species_code, certified,
                                   CASE WHEN collection_name <> 'meta_catalog' THEN born_at END), ',' ORDER BY id)
         FROM birth_registry) ||
      (SELECT string_agg(concat_ws('|', id, code, name), ',' ORDER BY id) FROM dot_tools) ||
      (SELECT string_agg(concat_ws('|', id, table_name, entity_code, operation), ',' ORDER BY id) FROM registry_changelog)) AS d`);
  return rows[0]!.d;
}

describe('the test world', () => {
  test('probeEntryState reports exactly the figures the fixture declares', async () => {
    const s = await probeEntryState(db.pool);
    assert.equal(s.worldScale, 'test');
    const mismatches = compareWithFigures(s, figures).filter((c) => !c.ok);
    assert.deepEqual(mismatches, []);
    // and the headline figures, spelled out
    assert.equal(s.birthRegistry.rowCount, figures.births);
    assert.equal(s.birthRegistry.distinctCodes, figures.births);
    assert.equal(s.birthRegistry.distinctCollections, 79);
    assert.deepEqual(
      Object.fromEntries(s.safetyNet.blockDims.map((d) => [d.dim, d.count])),
      { dot_pivot_update: 1, fs_file_no_registry: 16, orphan_critical_active: 59, phantom_real: 6 },
    );
  });

  test('the 59 critical orphans are the 54 unregistered IU commands and the 5 pivot collisions', async () => {
    const { rows } = await db.pool.query<{ collection_name: string; entity_code: string; born_in_collection: string | null }>(
      `SELECT collection_name, entity_code, born_in_collection FROM v_birth_orphan
        WHERE orphan_class = 'CRITICAL_ACTIVE' ORDER BY collection_name, entity_code`,
    );
    const iuc = rows.filter((r) => r.collection_name === 'dot_iu_command_catalog');
    const piv = rows.filter((r) => r.collection_name === 'pivot_definitions');
    assert.equal(iuc.length, figures.criticalOrphans.dot_iu_command_catalog);
    assert.ok(iuc.every((r) => r.born_in_collection === null), 'the IU commands are simply not born');
    assert.deepEqual(piv.map((r) => r.entity_code), [...figures.pivotCollisions]);
    assert.ok(piv.every((r) => r.born_in_collection === 'pivot_catalog'), 'each pivot code is born in another collection');
    assert.equal(rows.length, iuc.length + piv.length);
    const standard = await one<{ n: number }>(`SELECT count(*)::int AS n FROM v_birth_orphan WHERE orphan_class = 'STANDARD'`);
    assert.ok(standard.n > 0, 'non-critical orphans exist and do not count');
  });

  test('~47% of dot_tools codes and every entity_species code fail the hardcoded rule', async () => {
    const dt = await one<{ failing: number; total: number; kebab: number }>(`
      SELECT count(*) FILTER (WHERE code !~ '^[A-Z]+-[0-9]+$')::int AS failing, count(*)::int AS total,
             count(*) FILTER (WHERE code ~ '^dot(-[a-z]+)+$')::int AS kebab
        FROM dot_tools`);
    assert.equal(dt.total, figures.dotTools.rows);
    assert.equal(dt.failing, figures.dotTools.codeRuleFailing);
    assert.equal(dt.kebab, dt.failing, 'the failing shape is the hand-written kebab code');
    assert.equal(Math.round((100 * dt.failing) / dt.total), 47);
    const es = await one<{ failing: number; total: number }>(`
      SELECT count(*) FILTER (WHERE code !~ '^[A-Z]+-[0-9]+$')::int AS failing, count(*)::int AS total FROM entity_species`);
    assert.equal(es.failing, es.total);
    const unregistered = await one<{ n: number }>(`SELECT count(*)::int AS n FROM dot_tools WHERE code IN ('dot-birth-admit', 'dot-pivot-update')`);
    assert.equal(unregistered.n, 0, 'dot-birth-admit is not registered yet; dot-pivot-update is a staged file only');
  });

  test('phantoms: 6 REAL_MISSING block, 283 synthetic are counted apart', async () => {
    const { rows } = await db.pool.query<{ phantom_class: string; n: number }>(
      `SELECT phantom_class, count(*)::int AS n FROM v_birth_phantom GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(rows, [
      { phantom_class: 'REAL_MISSING', n: figures.blockDims.phantom_real },
      { phantom_class: 'SYNTHETIC', n: figures.phantomSynthetic },
    ]);
  });

  test('coverage: the unregistered IU commands are uncovered, dot_tools is fully covered', async () => {
    const { rows } = await db.pool.query<{ collection_name: string; coverage_status: string; orphan_count: string; phantom_count: string }>(
      `SELECT collection_name, coverage_status, orphan_count, phantom_count FROM v_birth_coverage_status
        WHERE collection_name IN ('dot_iu_command_catalog', 'dot_tools', 'pivot_definitions') ORDER BY 1`,
    );
    assert.deepEqual(rows, [
      { collection_name: 'dot_iu_command_catalog', coverage_status: 'UNCOVERED', orphan_count: '54', phantom_count: '0' },
      { collection_name: 'dot_tools', coverage_status: 'COVERED', orphan_count: '0', phantom_count: '0' },
      { collection_name: 'pivot_definitions', coverage_status: 'PARTIAL', orphan_count: '5', phantom_count: '0' },
    ]);
  });

  test('rp_cleanup is NO-GO: refused by all four BLOCK dims', async () => {
    await assert.rejects(db.pool.query(`SELECT * FROM fn_assert_safe_for_dot_action('rp_cleanup')`), (err: pg.DatabaseError) => {
      assert.equal(err.code, 'BG423');
      assert.equal(
        err.message,
        '[SAFETY] rp_cleanup refused by BLOCK dims: dot_pivot_update=1, fs_file_no_registry=16, orphan_critical_active=59, phantom_real=6',
      );
      return true;
    });
  });

  test('the bulk load left every trigger enabled and the birth triggers live', async () => {
    const disabled = await one<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'O'`);
    assert.equal(disabled.n, 0);
    const c = await db.pool.connect();
    try {
      const role = await c.query<{ r: string }>(`SELECT current_setting('session_replication_role') AS r`);
      assert.equal(role.rows[0]?.r, 'origin');
      await c.query('BEGIN');
      const r = await c.query<{ code: string }>(`INSERT INTO dot_tools (name, _dot_origin) VALUES ('after load', 'x') RETURNING code`);
      assert.equal(r.rows[0]?.code, `DOT-${String(figures.dotTools.rows - figures.dotTools.codeRuleFailing + 1).padStart(3, '0')}`);
      const born = await c.query(`SELECT 1 FROM birth_registry WHERE entity_code = $1 AND collection_name = 'dot_tools'`, [r.rows[0]?.code]);
      assert.equal(born.rowCount, 1);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
  });

  test('progress is reported from baseline to done', () => {
    assert.equal(progress[0]?.phase, 'baseline');
    const last = progress.at(-1);
    assert.equal(last?.phase, 'done');
    assert.equal(last?.done, last?.total);
    assert.ok(progress.some((p) => p.phase === 'births pivot_definitions'));
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i]!.done >= progress[i - 1]!.done, 'progress never goes back');
  });
});

describe('loading over an existing world', () => {
  test('a second load without force is refused and changes nothing', async () => {
    const before = await digest(db.pool);
    await assert.rejects(loadWorld(db.pool, { scale: 'test' }), (err: Error) => {
      assert.ok(err instanceof WorldExistsError);
      assert.match(err.message, /already loaded/);
      assert.match(err.message, /--force/);
      return true;
    });
    assert.equal(await digest(db.pool), before);
  });

  test('force drops and reloads cleanly, to the same world row for row', async () => {
    const before = await digest(db.pool);
    await db.pool.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('DOT-7777', 'stray', 'x')`);
    await db.pool.query(`CREATE TABLE stray_table (id integer)`);
    const summary = await loadWorld(db.pool, { scale: 'test', force: true });
    assert.equal(summary.replaced, true);
    assert.equal(summary.births, figures.births);
    const stray = await one<{ t: string | null; n: number }>(
      `SELECT to_regclass('stray_table')::text AS t, (SELECT count(*)::int FROM dot_tools WHERE code = 'DOT-7777') AS n`,
    );
    assert.deepEqual(stray, { t: null, n: 0 });
    assert.equal(await digest(db.pool), before, 'the generator is deterministic');
    const mismatches = compareWithFigures(await probeEntryState(db.pool), figures).filter((c) => !c.ok);
    assert.deepEqual(mismatches, []);
  });

  test('an estate this tool did not load is not overwritten without force; an empty baseline is filled', async () => {
    const other = await freshDatabase('world_foreign');
    try {
      await installBaseline(other.pool);
      await other.pool.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('DOT-1', 'theirs', 'x')`);
      await assert.rejects(loadWorld(other.pool, { scale: 'test' }), /already loaded.*--force/);
      await other.pool.query(`DELETE FROM dot_tools`);
      const s = await loadWorld(other.pool, { scale: 'test' });
      assert.equal(s.replaced, false);
      assert.equal(s.births, figures.births);
    } finally {
      await other.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Reproduced before the fix: load, apply, load --force, apply → ENTRY_DRIFT, because the packet ledger
// still described the dropped estate ("recorded baseline": N governed differences since run 1).

type RunRow = { run_id: string; kind: string; status: string; target_step: number | null; entry_hash: string | null; exit_hash: string | null };

/** The runs of a ledger schema (the live one or an archive), oldest first. */
async function ledgerRuns(q: pg.Pool, schema: string): Promise<RunRow[]> {
  const r = await q.query<RunRow>(
    `SELECT run_id::text, kind, status, target_step, entry_hash, exit_hash FROM ${pg.escapeIdentifier(schema)}.apply_run ORDER BY run_id`);
  return r.rows;
}

async function ledgerStepCount(q: pg.Pool, schema: string): Promise<number> {
  return (await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(schema)}.apply_step`)).rows[0]!.n;
}

/**
 * What a reload may leave of the packet in this database: objects that depend on the packet's roles
 * (owned by them, or granted to them), the event triggers, birthgate_owner's functions. The roles
 * themselves are cluster-wide and stay.
 */
async function packetLeftovers(q: pg.Pool): Promise<Record<string, unknown>> {
  const r = await q.query<{ l: Record<string, unknown> }>(`
    SELECT jsonb_build_object(
      'depending_on_packet_roles', (SELECT coalesce(jsonb_agg(format('%s %s %s', d.classid::regclass, d.objid, d.deptype) ORDER BY 1), '[]')
                                      FROM pg_shdepend d
                                     WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                                       AND d.refclassid = 'pg_authid'::regclass
                                       AND d.refobjid IN (SELECT oid FROM pg_roles WHERE rolname IN ('birthgate_owner', 'birthgate_operator', 'birthgate_worker'))),
      'event_triggers', (SELECT jsonb_agg(format('%s:%s', evtname, evtenabled) ORDER BY evtname) FROM pg_event_trigger),
      'packet_relations', (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
                              AND (c.relname ~ '^birth_(admission|drift)_' OR c.relname IN ('birth_break_glass', 'birth_ddl_ledger'))),
      'roles', (SELECT jsonb_agg(rolname ORDER BY rolname) FROM pg_roles WHERE rolname IN ('birthgate_owner', 'birthgate_operator'))
    ) AS l`);
  return r.rows[0]!.l;
}

const NOTHING_LEFT = {
  depending_on_packet_roles: [],
  event_triggers: ['trg_guard_trigger_ddl:O', 'trg_guard_trigger_drop:O'],
  packet_relations: 0,
  roles: ['birthgate_operator', 'birthgate_owner'],
};

describe('reloading an estate the packet was applied to (issue 9 item 4)', () => {
  let db: FreshDatabase;
  let env: NodeJS.ProcessEnv;
  let first: ApplyResult;
  const reportDir = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'world-reload-'));
  const approval = { owner: 'test-owner', approvalId: 'APR-RELOAD-1' };

  before(async () => {
    db = await freshDatabase('world_reload');
    await loadWorld(db.pool, { scale: 'test' });
    first = await applyPacket(db.pool, { ...approval, reportDir });
    env = { ...process.env, DATABASE_URL: db.url, TEMPORAL_ADDRESS: testEnv().temporalAddress, BIRTHGATE_HOME: reportDir };
  });
  after(async () => {
    await db?.dispose();
  });

  test('load, apply, load --force (CLI), apply: the reload archives the ledger and says which runs; the next apply is applied', async () => {
    assert.equal(first.status, 'applied');
    const runsBefore = await ledgerRuns(db.pool, 'birthgate_ledger');
    const stepsBefore = await ledgerStepCount(db.pool, 'birthgate_ledger');
    assert.deepEqual(runsBefore.map((r) => [r.run_id, r.status]), [[first.runId, 'applied']]);

    const reload = await runCli(['world', 'load', '--scale', 'test', '--force'], env);
    assert.equal(reload.code, 0, reload.stderr);
    assert.match(reload.stdout, /replaced the previous estate/);
    const said = reload.stdout.match(
      /packet ledger archived: 1 run\(s\) of the dropped estate moved to schema (birthgate_ledger_archive_\d{8}_\d{6}_\d{6}): run (\d+) \(apply to step (\d+), applied\)/);
    assert.ok(said, reload.stdout);
    const [, archive, runId, target] = said;
    assert.equal(runId, first.runId);
    assert.equal(Number(target), first.through);

    // The archive holds the old runs row for row; the live ledger starts empty and says where they went.
    assert.deepEqual(await ledgerRuns(db.pool, archive!), runsBefore);
    assert.equal(await ledgerStepCount(db.pool, archive!), stepsBefore);
    assert.deepEqual(await ledgerRuns(db.pool, 'birthgate_ledger'), []);
    const note = await db.pool.query<{ archive_schema: string; runs: Array<{ runId: string; status: string }>; reason: string }>(
      'SELECT archive_schema, runs, reason FROM birthgate_ledger.ledger_archive');
    assert.equal(note.rows.length, 1);
    assert.equal(note.rows[0]!.archive_schema, archive);
    assert.deepEqual(note.rows[0]!.runs.map((r) => [r.runId, r.status]), [[first.runId, 'applied']]);
    assert.match(note.rows[0]!.reason, /world load --force: the test world loaded .* was dropped and a test world loaded/);

    // The entry check now judges the new estate as found, and the apply goes through.
    const check = await entryCheck(db.pool);
    assert.ok(check.ok, JSON.stringify(check.checks.filter((c) => !c.ok)));
    assert.equal(check.appliedThrough, 0);
    const second = await applyPacket(db.pool, { ...approval, reportDir });
    assert.equal(second.status, 'applied');
    assert.equal(second.through, first.through);
    // Run ids continue after the archived ones: the first run's backup is not overwritten.
    assert.equal(Number(second.runId), Number(first.runId) + 1);
    assert.notEqual(second.backup.dir, first.backup.dir);
    assert.ok(fs.existsSync(first.backup.dir) && fs.existsSync(second.backup.dir));
    assert.deepEqual((await db.pool.query('SELECT dim FROM fn_drift_tick()')).rows, [], 'the re-applied estate is clean');
  });

  test('a reload leaves no half-packet behind, after a whole or a partial apply: the entry check passes (test 1 applies after it)', async () => {
    const whole = await loadWorld(db.pool, { scale: 'test', force: true });
    assert.deepEqual(whole.ledgerArchive?.runs.map((r) => r.status), ['applied']);
    assert.deepEqual(await packetLeftovers(db.pool), NOTHING_LEFT);
    assert.deepEqual(compareWithFigures(await probeEntryState(db.pool), WORLD_FIGURES.test).filter((c) => !c.ok), []);

    // Half a packet: the gate, the finalize and the flag in place (steps 1–11), no drift monitor.
    const half = await applyPacket(db.pool, { through: 11, ...approval, reportDir });
    assert.equal(half.status, 'applied');
    const again = await loadWorld(db.pool, { scale: 'test', force: true });
    assert.deepEqual(again.ledgerArchive?.runs.map((r) => [r.runId, r.targetStep, r.status]), [[half.runId, 11, 'applied']]);
    assert.deepEqual(await packetLeftovers(db.pool), NOTHING_LEFT);
    const check = await entryCheck(db.pool);
    assert.ok(check.ok, JSON.stringify(check.checks.filter((c) => !c.ok)));
    assert.equal(check.appliedThrough, 0);
    const archives = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname ~ '^birthgate_ledger_archive_'`);
    assert.equal(archives.rows[0]!.n, 3, 'one archive per reload that replaced a ledger with runs');
  });

  test('a reload is refused while a packet run holds the lock or a packet workflow the lease: nothing dropped, nothing archived (CLI exit 2)', async () => {
    await applyPacket(db.pool, { through: 6, reportDir });
    const worldBefore = await digest(db.pool);
    const runsBefore = await ledgerRuns(db.pool, 'birthgate_ledger');
    const holder = new pg.Client({ connectionString: db.url, application_name: 'test-packet-lock' });
    await holder.connect();
    try {
      await holder.query('SELECT pg_advisory_lock($1, $2)', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
      await assert.rejects(loadWorld(db.pool, { scale: 'test', force: true }), (err: Error) => {
        assert.ok(err instanceof WorldBusyError, String(err));
        assert.match(err.message, /packet lock .* nothing dropped/);
        return true;
      });
      const cli = await runCli(['world', 'load', '--scale', 'test', '--force'], env);
      assert.equal(cli.code, 2, cli.stderr);
      assert.match(cli.stderr, /packet lock/);
    } finally {
      await holder.end();
    }
    // A packet workflow between two activities holds no lock, only the lease.
    await db.pool.query(`INSERT INTO birthgate_ledger.packet_lease (workflow_id, workflow_run, kind) VALUES ('apply-packet:test', 'run-1', 'apply')`);
    try {
      await assert.rejects(loadWorld(db.pool, { scale: 'test', force: true }), (err: Error) => {
        assert.ok(err instanceof WorldBusyError, String(err));
        assert.match(err.message, /packet workflow apply-packet:test \(run run-1, apply\) holds the packet lease/);
        return true;
      });
    } finally {
      await db.pool.query(`DELETE FROM birthgate_ledger.packet_lease`);
    }
    assert.equal(await digest(db.pool), worldBefore);
    assert.deepEqual(await ledgerRuns(db.pool, 'birthgate_ledger'), runsBefore);
    assert.equal(runsBefore.length, 1, 'a ledger with a run that a reload would have archived');
    assert.deepEqual((await db.pool.query(`SELECT to_regclass('public.birth_admission_permit')::text AS t`)).rows, [{ t: 'birth_admission_permit' }],
      'the packet steps are still applied');
  });
});
