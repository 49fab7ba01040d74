// The estate as found (KB-2590): the baseline installs, and every defect the seeds describe is real.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { BaselinePresentError, baselinePresent, installBaseline } from '../fixtures/baseline.ts';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import { probeEntryState } from '../probes/entry-state.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';

const shape = WORLD_FIGURES.test; // the schema-level figures are the same at every scale
let db: FreshDatabase;

before(async () => {
  db = await freshDatabase('baseline');
  await installBaseline(db.pool);
});
after(async () => {
  await db?.dispose();
});

type Notice = { severity: string; message: string };

/** Run fn on one client in a transaction that is always rolled back, collecting NOTICE/WARNINGs. */
async function scratch<T>(fn: (c: pg.PoolClient, notices: Notice[]) => Promise<T>): Promise<T> {
  const c = await db.pool.connect();
  const notices: Notice[] = [];
  const onNotice = (n: { severity?: string; message?: string }) => notices.push({ severity: n.severity ?? '', message: n.message ?? '' });
  c.on('notice', onNotice);
  try {
    await c.query('BEGIN');
    return await fn(c, notices);
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    c.off('notice', onNotice);
    c.release();
  }
}

async function sqlstate(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as pg.DatabaseError;
    return { code: e.code ?? '', message: e.message };
  }
  return assert.fail('expected the statement to fail');
}

describe('the baseline installs', () => {
  test('every object KB-2590 names is present with the figures it states', async () => {
    const s = await probeEntryState(db.pool);
    assert.equal(s.birthRegistry.columnCount, shape.birthRegistryColumns);
    assert.deepEqual(s.birthRegistry.constraints.map((c) => c.name).sort(), [...shape.birthRegistryConstraints].sort());
    assert.deepEqual(s.birthRegistry.indexes.map((i) => i.name).sort(), [...shape.birthRegistryIndexes].sort());
    assert.deepEqual(
      s.birthRegistry.indexes.filter((i) => i.partial).map((i) => i.name).sort(),
      ['idx_birth_species', 'idx_birth_uncertified'],
    );
    assert.equal(s.birthRegistry.statusCheck, false, 'status has no CHECK');
    assert.equal(s.birthRegistry.owner, 'directus');
    assert.equal(s.families.bindings.birthAutoTriggers, shape.birthAutoTriggers);
    assert.equal(s.families.bindings.birthGateTables.length, shape.birthGateTables);
    assert.equal(s.families.dotTools.columnCount, shape.dotTools.columns);
    assert.equal(s.families.dotTools.triggers.length, shape.dotTools.triggers);
    assert.equal(s.families.dotTools.codeField, 'code');
    assert.deepEqual([...s.composite.onConflictEntityCodeFunctions].sort(), [...shape.onConflictEntityCodeFunctions].sort());
    assert.ok(Object.values(s.governance.objects).every(Boolean), 'governance objects present');
    assert.deepEqual(s.governance.handoffObjectBorn, shape.handoffObjectBorn);
    assert.equal(s.governance.ospaRows, 0);
    assert.ok(Object.values(s.safetyNet.objects).every(Boolean), 'safety-net objects present');
    assert.deepEqual(s.safetyNet.rpCleanupPolicy, ['dot_pivot_update', 'fs_file_no_registry', 'orphan_critical_active', 'phantom_real']);
    assert.equal(s.informationUnit.layer2?.deferrable, true);
    assert.equal(s.informationUnit.layer2?.initiallyDeferred, true);
    assert.equal(s.ddlGuard.length, 2);
  });

  test('dot_tools carries the named triggers in the order the gate relies on', async () => {
    const { rows } = await db.pool.query<{ tgname: string; fn: string; def: string }>(
      `SELECT tgname, tgfoid::regproc::text AS fn, pg_get_triggerdef(oid) AS def
         FROM pg_trigger WHERE tgrelid = 'dot_tools'::regclass AND NOT tgisinternal ORDER BY tgname`,
    );
    const byName = new Map(rows.map((r) => [r.tgname, r]));
    assert.equal(byName.get('trg_auto_code_dot_tools')?.fn, 'gen_code_dot_tools');
    assert.equal(byName.get('trg_before_birth_gate_dot_tools')?.fn, 'fn_birth_gate');
    for (const dup of ['birth_trigger_dot_tools', 'trg_birth_dot_tools']) {
      assert.match(byName.get(dup)?.def ?? '', /AFTER INSERT ON public\.dot_tools .*fn_birth_registry_auto\('code'\)/);
    }
    // Same-timing triggers fire in name order (the server's "C" order of tgname): among the BEFORE
    // INSERT row triggers, code generation must come before the advisory gate. Read from the catalog.
    const { rows: before } = await db.pool.query<{ tgname: string }>(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'dot_tools'::regclass AND NOT tgisinternal
          AND (tgtype & 2) <> 0 AND (tgtype & 4) <> 0 ORDER BY tgname COLLATE "C"`);
    const order = before.map((r) => r.tgname);
    assert.ok(order.indexOf('trg_auto_code_dot_tools') >= 0 && order.indexOf('trg_auto_code_dot_tools') < order.indexOf('trg_before_birth_gate_dot_tools'),
      `BEFORE INSERT firing order: ${order.join(', ')}`);
  });

  test('installing over an existing baseline is refused unless forced', async () => {
    assert.equal(await baselinePresent(db.pool), true);
    await assert.rejects(installBaseline(db.pool), BaselinePresentError);
    const other = await freshDatabase('baseline_force');
    try {
      await installBaseline(other.pool);
      await other.pool.query(`INSERT INTO dot_tools (name, _dot_origin) VALUES ('left over', 'x')`);
      await installBaseline(other.pool, { force: true });
      const { rows } = await other.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM dot_tools');
      assert.equal(rows[0]?.n, 0, 'force reinstalls an empty estate');
    } finally {
      await other.dispose();
    }
  });
});

describe('the defects are real', () => {
  test('a pivot whose code is already born in another collection is silently not born', async () => {
    await scratch(async (c) => {
      await c.query(`INSERT INTO pivot_catalog (code, name, _dot_origin) VALUES ('PIV-777', 'legacy pivot', 'x')`);
      // no error: the EXISTS guard passes, ON CONFLICT (entity_code) swallows the birth
      await c.query(`INSERT INTO pivot_definitions (code, name) VALUES ('PIV-777', 'pivot 777')`);
      const births = await c.query<{ collection_name: string }>(`SELECT collection_name FROM birth_registry WHERE entity_code = 'PIV-777'`);
      assert.deepEqual(births.rows.map((r) => r.collection_name), ['pivot_catalog']);
      const orphan = await c.query<{ orphan_class: string; born_in_collection: string }>(
        `SELECT orphan_class, born_in_collection FROM v_birth_orphan WHERE collection_name = 'pivot_definitions' AND entity_code = 'PIV-777'`,
      );
      assert.deepEqual(orphan.rows, [{ orphan_class: 'CRITICAL_ACTIVE', born_in_collection: 'pivot_catalog' }]);
    });
  });

  test('the duplicate AFTER INSERT birth triggers on dot_tools still birth a row once', async () => {
    await scratch(async (c) => {
      const r = await c.query<{ code: string }>(`INSERT INTO dot_tools (name, _dot_origin) VALUES ('Twice bound', 'x') RETURNING code`);
      const code = r.rows[0]!.code;
      assert.match(code, /^DOT-[0-9]+$/, 'gen_code_dot_tools generated a rule-conforming code');
      const n = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM birth_registry WHERE entity_code = $1`, [code]);
      assert.equal(n.rows[0]?.n, 1);
    });
  });

  test('the advisory gate warns and lets a bad row in (warning mode by default)', async () => {
    await scratch(async (c, notices) => {
      await c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('dot-bad-shape', 'Bad shape', 'dot-dot-register')`);
      const warning = notices.find((n) => n.message.startsWith('[BIRTH-GATE]'));
      assert.ok(warning, 'the gate raised a notice');
      assert.equal(warning.severity, 'WARNING');
      assert.match(warning.message, /code_format/);
      const born = await c.query(`SELECT 1 FROM birth_registry WHERE entity_code = 'dot-bad-shape' AND collection_name = 'dot_tools'`);
      assert.equal(born.rowCount, 1, 'the bad row got in and was born');
    });
  });

  test("app.birth_gate_mode = 'blocking' raises and keeps the row out", async () => {
    await scratch(async (c) => {
      await c.query(`SET LOCAL app.birth_gate_mode = 'blocking'`);
      await c.query('SAVEPOINT s');
      const e = await sqlstate(c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('dot-blocked', 'Blocked', 'x')`));
      assert.equal(e.code, 'BG401');
      assert.match(e.message, /\[BIRTH-GATE\] dot_tools\.dot-blocked refused: .*code_format/);
      await c.query('ROLLBACK TO SAVEPOINT s');
      const row = await c.query(`SELECT 1 FROM dot_tools WHERE code = 'dot-blocked'`);
      assert.equal(row.rowCount, 0);
      // a row that passes all five checks is admitted in blocking mode
      await c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('DOT-9001', 'Conforming', 'x')`);
    });
  });

  test('the kill switch app.bypass_birth_gate bypasses the gate even in blocking mode', async () => {
    await scratch(async (c, notices) => {
      await c.query(`SET LOCAL app.birth_gate_mode = 'blocking'`);
      await c.query(`SET LOCAL app.bypass_birth_gate = 'on'`);
      await c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('dot-bypassed', 'Bypassed', '')`);
      assert.equal(notices.filter((n) => n.message.startsWith('[BIRTH-GATE]')).length, 0);
      const row = await c.query(`SELECT 1 FROM dot_tools WHERE code = 'dot-bypassed'`);
      assert.equal(row.rowCount, 1);
    });
  });

  test('the gate skips rows with a null or empty code', async () => {
    await scratch(async (c, notices) => {
      await c.query(`SET LOCAL app.birth_gate_mode = 'blocking'`);
      await c.query(`INSERT INTO kb_articles (code, name) VALUES (NULL, 'no code'), ('', 'empty code')`);
      assert.equal(notices.length, 0);
      const born = await c.query(`SELECT 1 FROM birth_registry WHERE collection_name = 'kb_articles'`);
      assert.equal(born.rowCount, 0, 'a code-less row is not born either');
    });
  });

  test('the hardcoded rule rejects the dot_tools code shapes production rejects and accepts the ones it accepts', async () => {
    const cases: Array<[string, boolean]> = [
      ['DOT-123', true],
      ['DOT-001', true],
      ['PIV-101', true],
      ['dot-birth-admit', false],
      ['dot-pivot-update', false],
      ['dot-dot-register', false],
      ['DOT_123', false],
      ['dot-123', false],
      ['DOT-12A', false],
      ['Dot-123', false],
      ['DOT-', false],
      ['sp-taxon-0001', false],
    ];
    for (const [code, accepted] of cases) {
      const { rows } = await db.pool.query<{ check_name: string }>(
        `SELECT check_name FROM fn_pre_birth_check('dot_tools', $1, NULL, 'dot-dot-register')`,
        [code],
      );
      assert.equal(!rows.some((r) => r.check_name === 'code_format'), accepted, `${code} should be ${accepted ? 'accepted' : 'rejected'}`);
    }
  });

  test('fn_pre_birth_check runs its five checks', async () => {
    await scratch(async (c) => {
      await c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('DOT-4242', 'Taken name', 'x')`);
      const fails = async (collection: string, code: string, name: string | null, origin: string | null) =>
        (await c.query<{ check_no: number }>(`SELECT check_no FROM fn_pre_birth_check($1, $2, $3, $4) ORDER BY check_no`, [collection, code, name, origin])).rows.map(
          (r) => r.check_no,
        );
      assert.deepEqual(await fails('dot_tools', 'DOT-5000', 'Fresh name', 'x'), []);
      assert.deepEqual(await fails('dot_iu_command_catalog', 'IUC-999', null, 'x'), [1], 'unmanaged collection');
      assert.deepEqual(await fails('dot_tools', 'DOT-5000', 'Fresh name', ' '), [2], 'empty _dot_origin');
      assert.deepEqual(await fails('dot_tools', 'dot-x', 'Fresh name', 'x'), [3], 'code format');
      assert.deepEqual(await fails('dot_tools', 'DOT-5000', 'Taken name', 'x'), [4], 'name taken');
      assert.deepEqual(await fails('dot_tools', 'DOT-4242', 'Fresh name', 'x'), [5], 'code already born');
    });
  });

  test('the DDL guard warns on trigger DDL and ignores unrelated DDL', async () => {
    await scratch(async (c, notices) => {
      await c.query('CREATE TABLE guard_probe (id integer)');
      assert.equal(notices.filter((n) => n.message.includes('[TRIGGER-GUARD]')).length, 0, 'CREATE TABLE is not watched');
      await c.query('CREATE TRIGGER trg_guard_probe AFTER INSERT ON dot_tools FOR EACH ROW EXECUTE FUNCTION fn_notify_change()');
      await c.query('ALTER TABLE dot_tools DISABLE TRIGGER trg_guard_probe');
      await c.query('DROP TRIGGER trg_guard_probe ON dot_tools');
      const guard = notices.filter((n) => n.message.startsWith('[TRIGGER-GUARD]'));
      assert.deepEqual(guard.map((n) => n.severity), ['WARNING', 'WARNING', 'WARNING']);
      assert.equal(guard[0]?.message, '[TRIGGER-GUARD] DDL detected: CREATE TRIGGER on trg_guard_probe on public.dot_tools');
      assert.equal(guard[1]?.message, '[TRIGGER-GUARD] DDL detected: ALTER TABLE on public.dot_tools');
      assert.equal(guard[2]?.message, '[TRIGGER-GUARD] DDL detected: DROP TRIGGER on trg_guard_probe on public.dot_tools');
    });
  });

  test('information_unit layer 2 fires at commit, not at the statement', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO information_unit (code, title, iu_type, status) VALUES ('IU-L2-1', 'A unit', 'fact', 'draft')`);
      await c.query(`UPDATE information_unit SET status = 'bogus' WHERE code = 'IU-L2-1'`); // layer 1 is INSERT-only
      const e = await sqlstate(c.query('COMMIT'));
      assert.match(e.message, /\[IU-GATE L2\] information_unit IU-L2-1 .* status bogus at commit/);
      const gone = await c.query(`SELECT 1 FROM information_unit WHERE code = 'IU-L2-1'`);
      assert.equal(gone.rowCount, 0, 'the failed commit took the row with it');
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
  });

  test('layer 2 refuses at commit an information unit the collision left unborn', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO pivot_catalog (code, name) VALUES ('IU-L2-2', 'squatter')`);
      await c.query(`INSERT INTO information_unit (code, title, iu_type, status) VALUES ('IU-L2-2', 'A unit', 'fact', 'draft')`);
      const e = await sqlstate(c.query('COMMIT'));
      assert.match(e.message, /IU-L2-2 .* is not born at commit/);
    } finally {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    }
  });

  test('the gate-token ledger opens a gate once, logs it, and refuses a second open', async () => {
    await scratch(async (c) => {
      const open = await c.query<{ id: string }>(`SELECT fn_iu_gate_open('iu:demo', 'APR-1', 'owner', 'rehearsal', 60) AS id`);
      assert.ok(Number(open.rows[0]?.id) > 0);
      const state = await c.query<{ s: string }>(`SELECT fn_iu_gate_state('iu:demo') AS s`);
      assert.equal(state.rows[0]?.s, 'OPEN');
      const log = await c.query(`SELECT 1 FROM dot_iu_command_log WHERE command = 'iu.gate.open' AND payload ->> 'gate_key' = 'iu:demo'`);
      assert.equal(log.rowCount, 1);
      await c.query('SAVEPOINT s');
      await assert.rejects(c.query(`SELECT fn_iu_gate_open('iu:demo', 'APR-2', 'owner', 'again', 60)`), /already open/);
      await c.query('ROLLBACK TO SAVEPOINT s');
      await assert.rejects(c.query(`SELECT fn_iu_gate_open('iu:other', 'APR-3', 'owner', 'ttl', 0)`), /ttl/);
    });
  });
});

describe('the BLOCK dims of fn_assert_safe_for_dot_action', () => {
  test('rp_cleanup is refused with BG423 naming the dim that is non-zero; birth_admit is not', async () => {
    await scratch(async (c) => {
      const clean = await c.query<{ dim: string; blocking: boolean }>(`SELECT dim, blocking FROM fn_assert_safe_for_dot_action('rp_cleanup')`);
      assert.equal(clean.rows.length, 4);
      assert.ok(clean.rows.every((r) => !r.blocking), 'an empty estate blocks nothing');
      await c.query(`INSERT INTO dot_iu_command_catalog (command_code, name) VALUES ('IUC-900', 'unregistered command')`);
      await c.query('SAVEPOINT s');
      const e = await sqlstate(c.query(`SELECT * FROM fn_assert_safe_for_dot_action('rp_cleanup')`));
      assert.equal(e.code, 'BG423');
      assert.match(e.message, /rp_cleanup refused by BLOCK dims: orphan_critical_active=1$/);
      await c.query('ROLLBACK TO SAVEPOINT s');
      const admit = await c.query<{ dim: string; block_count: string; blocking: boolean }>(
        `SELECT dim, block_count, blocking FROM fn_assert_safe_for_dot_action('birth_admit') WHERE dim = 'orphan_critical_active'`,
      );
      assert.deepEqual(admit.rows, [{ dim: 'orphan_critical_active', block_count: '1', blocking: false }]);
    });
  });

  test('a policy dim nothing computes fails closed; a registered dim source plugs in', async () => {
    await scratch(async (c) => {
      await c.query(`INSERT INTO dot_action_block_policy (action, dim) VALUES ('birth_admit', 'gate_drift')`);
      await c.query('SAVEPOINT s');
      const missing = await sqlstate(c.query(`SELECT * FROM fn_assert_safe_for_dot_action('birth_admit')`));
      assert.equal(missing.code, 'BG423');
      assert.match(missing.message, /gate_drift=not computed/);
      await c.query('ROLLBACK TO SAVEPOINT s');
      await c.query(`CREATE FUNCTION pg_temp.drift_probe() RETURNS TABLE (block_count bigint, detail text)
                     LANGUAGE sql AS $$ SELECT 0::bigint, 'no drift' $$`);
      await c.query(`INSERT INTO dot_block_dim_source (dim, count_fn) VALUES ('gate_drift', 'pg_temp.drift_probe'::regproc)`);
      const ok = await c.query<{ dim: string; blocking: boolean }>(`SELECT dim, blocking FROM fn_assert_safe_for_dot_action('birth_admit')`);
      assert.deepEqual(ok.rows.find((r) => r.dim === 'gate_drift'), { dim: 'gate_drift', blocking: false });
    });
  });

  test('fn_retire_gate_check passes a phantom and refuses a live row', async () => {
    await scratch(async (c) => {
      await c.query(`INSERT INTO tags (code, name) VALUES ('TAG-000001', 'live')`);
      await c.query(`INSERT INTO birth_registry (entity_code, collection_name) VALUES ('TAG-999999', 'tags')`);
      const check = async (code: string) =>
        Object.fromEntries(
          (await c.query<{ check_name: string; passed: boolean }>(`SELECT check_name, passed FROM fn_retire_gate_check('tags', $1)`, [code])).rows.map(
            (r) => [r.check_name, r.passed],
          ),
        );
      assert.deepEqual(await check('TAG-999999'), { birth_exists: true, status_born: true, row_absent: true, no_children: true });
      assert.equal((await check('TAG-000001')).row_absent, false);
    });
  });
});
