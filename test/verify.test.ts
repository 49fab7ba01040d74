// `birthgate verify`: the KB-2590 entry-state probes, live — on the test world it reports exactly
// what the fixture put there, it is read-only, and its fingerprints are computed, not copied.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CliContext } from '../cli/command.ts';
import { commands, type VerifyReport } from '../cli/commands/verify.ts';
import { loadConfig } from '../config/index.ts';
import { WORLD_FIGURES } from '../fixtures/figures.ts';
import { loadWorld } from '../fixtures/world.ts';
import { formatEntryState, probeEntryState } from '../probes/entry-state.ts';
import { EntryStateSchema } from '../probes/schema.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';

const figures = WORLD_FIGURES.test;
let db: FreshDatabase;

before(async () => {
  db = await freshDatabase('verify');
  await loadWorld(db.pool, { scale: 'test' });
});
after(async () => {
  await db?.dispose();
});

/** Run `birthgate verify` in-process against the fresh database; returns exit code and output. */
async function verify(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = {
    config: loadConfig(),
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    endpoints: async () => ({
      databaseUrl: db.url,
      workerDatabaseUrl: db.url,
      operatorDatabaseUrl: db.url,
      temporalAddress: 'unused:7233',
      namespace: 'default',
      uiUrl: undefined,
    }),
  };
  const command = commands.find((c) => c.name === 'verify');
  assert.ok(command);
  const code = await command.run(args, ctx);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('birthgate verify', () => {
  test('verify --json on the test scale reports exactly what the fixture put there', async () => {
    const { code, out } = await verify(['--json']);
    assert.equal(code, 0);
    const report = JSON.parse(out) as VerifyReport;
    const s = EntryStateSchema.parse(report.entryState);
    assert.equal(report.comparison?.scale, 'test');
    assert.equal(report.comparison?.ok, true, JSON.stringify(report.comparison?.checks.filter((c) => !c.ok)));
    assert.equal(s.birthRegistry.rowCount, figures.births);
    assert.equal(s.birthRegistry.distinctCollections, figures.collections);
    assert.equal(s.families.bindings.birthAutoTriggers, figures.birthAutoTriggers);
    assert.equal(s.families.bindings.birthGateTables.length, figures.birthGateTables);
    assert.equal(s.families.dotTools.rowCount, figures.dotTools.rows);
    assert.equal(s.families.dotTools.codeRuleFailing, figures.dotTools.codeRuleFailing);
    assert.equal(s.governance.changelogRows, figures.changelogRows);
    assert.deepEqual(Object.fromEntries(s.safetyNet.blockDims.map((d) => [d.dim, d.count])), { ...figures.blockDims });
    assert.deepEqual(s.safetyNet.gucs, { 'app.bypass_birth_gate': null, 'app.birth_gate_mode': null });
    assert.equal(s.channel.tempCreateDropInRollback, true);
    assert.equal(s.channel.serverVersionNum >= 160000 && s.channel.serverVersionNum < 170000, true, 'PostgreSQL 16');
  });

  test('verify prints the entry state grouped by KB-2590 section', async () => {
    const { code, out } = await verify([]);
    assert.equal(code, 0);
    const headings = out.split('\n').filter((l) => /^§\d /.test(l)).map((l) => l.slice(0, 2));
    assert.deepEqual(headings, ['§1', '§2', '§3', '§4', '§5', '§6', '§7', '§8', '§9']);
    assert.match(out, /^ {2}BLOCK orphan_critical_active\s+59 {2}dot_iu_command_catalog=54, pivot_definitions=5$/m);
    assert.match(out, /^ {2}codes failing \^\[A-Z\]\+-\[0-9\]\+\$\s+145 of 309 \(46\.9%\)$/m);
    assert.match(out, /fixture figures \(scale test\): all \d+ checks match/);
  });

  test('verify exits 1 and names the figure when the estate drifts from what the world declares', async () => {
    const c = await db.pool.connect();
    try {
      // Birth one unregistered IU command behind the fixture's back: orphan_critical_active 59 → 58.
      await c.query(`INSERT INTO birth_registry (entity_code, collection_name) VALUES ('IUC-001', 'dot_iu_command_catalog')`);
      const { code, out } = await verify([]);
      assert.equal(code, 1);
      assert.match(out, /§8 BLOCK orphan_critical_active\s+expected 59, found 58/);
      assert.match(out, /§2 birth_registry rows\s+expected 6000, found 6001/);
    } finally {
      await c.query(`DELETE FROM birth_registry WHERE entity_code = 'IUC-001'`);
      c.release();
    }
  });

  test("the probe is read-only and leaves a caller's open transaction as it was", async () => {
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ('DOT-8888', 'uncommitted', 'x')`);
      const s = await probeEntryState(c);
      assert.equal(s.families.dotTools.rowCount, figures.dotTools.rows + 1, 'the probe sees the caller’s uncommitted row');
      const still = await c.query(`SELECT 1 FROM dot_tools WHERE code = 'DOT-8888'`);
      assert.equal(still.rowCount, 1, 'the caller’s transaction survived the probe');
      const temp = await c.query(`SELECT to_regclass('pg_temp.bg_probe_temp') AS t`);
      assert.equal(temp.rows[0]?.t, null, 'no temp table left behind');
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
  });

  test('fingerprints are computed live: a body swap keeps the OID and changes the md5', async () => {
    const before = (await probeEntryState(db.pool)).fingerprints.find((f) => f.name === 'fn_birth_gate');
    assert.ok(before?.oid && before.md5);
    assert.equal(before.triggerBindings, figures.birthGateTables);
    const c = await db.pool.connect();
    try {
      await c.query('BEGIN');
      const { rows } = await c.query<{ def: string }>(`SELECT pg_get_functiondef('fn_birth_gate'::regproc) AS def`);
      await c.query(rows[0]!.def.replace('RETURN NEW;', 'RETURN NEW; -- drifted'));
      const after = (await probeEntryState(c)).fingerprints.find((f) => f.name === 'fn_birth_gate');
      assert.equal(after?.oid, before.oid);
      assert.notEqual(after?.md5, before.md5);
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    const restored = (await probeEntryState(db.pool)).fingerprints.find((f) => f.name === 'fn_birth_gate');
    assert.equal(restored?.md5, before.md5);
  });

  test('formatEntryState puts every value in one column', async () => {
    const text = formatEntryState(await probeEntryState(db.pool));
    // "  <label padded>  <value>": where the value starts, for every row that has one
    const starts = text
      .split('\n')
      .map((l) => /^( {2,}\S.*?\s{2,})\S/.exec(l)?.[1]?.length)
      .filter((n): n is number => n !== undefined);
    assert.ok(starts.length > 60, `${starts.length} rows`);
    assert.equal(new Set(starts).size, 1, 'all values start in one column');
  });
});
