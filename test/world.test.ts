// The fixture generator: the test world holds exactly what it declares (fixtures/figures.ts), the
// defects sit where KB-35E7 §8 puts them, a second load is refused, --force rebuilds cleanly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { installBaseline } from '../fixtures/baseline.ts';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import { loadWorld, WorldExistsError, type WorldProgress } from '../fixtures/world.ts';
import { probeEntryState } from '../probes/entry-state.ts';
import { compareWithFigures } from '../probes/figures-check.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';

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
