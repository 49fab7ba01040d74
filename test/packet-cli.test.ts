// The CLI verbs of the packet (cli/commands/packet.ts): zod-validated arguments, clear errors, JSON.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadWorld } from '../fixtures/world.ts';
import { applyPacket } from '../packet/apply.ts';
import { catalogFingerprint, type Fingerprint } from '../packet/fingerprint.ts';
import { verifyStep } from '../packet/step-runner.ts';
import { workerPassword } from './support/packet-world.ts';
import { runCli } from './support/cli.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';

describe('birthgate apply / rollback / rehearse', () => {
  let db: FreshDatabase;
  let entry: Fingerprint;
  let env: NodeJS.ProcessEnv;
  const home = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'packet-cli-'));
  before(async () => {
    db = await freshDatabase('packet_cli');
    await loadWorld(db.pool, { scale: 'test' });
    entry = await catalogFingerprint(db.pool);
    // The worker password every test file uses: birthgate_worker is cluster-wide.
    env = { ...process.env, DATABASE_URL: db.url, TEMPORAL_ADDRESS: testEnv().temporalAddress, BIRTHGATE_HOME: home, BIRTHGATE_WORKER_PASSWORD: workerPassword };
  });
  after(async () => db?.dispose());

  test('bad arguments are usage errors (exit 2) that say what is wrong', async () => {
    const half = await runCli(['apply', '--owner', 'someone'], env);
    assert.equal(half.code, 2);
    assert.match(half.stderr, /--owner and --approval go together/);
    const noTo = await runCli(['rollback'], env);
    assert.equal(noTo.code, 2);
    assert.match(noTo.stderr, /rollback --to N.*\n.*rollback CODE/);
    const badTo = await runCli(['rollback', '--to', 'x'], env);
    assert.equal(badTo.code, 2);
    assert.match(badTo.stderr, /--to: .*step number/);
    const bad = await runCli(['apply', '--through', 'seven'], env);
    assert.equal(bad.code, 2);
  });

  test('rehearse --json --report writes both files and exits 0 on PASS', async () => {
    const file = path.join(home, 'rehearsal');
    const r = await runCli(['rehearse', '--json', '--report', file], env);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { status: string; entryExit: { governedHash: string } };
    assert.equal(report.status, 'PASS');
    assert.ok(fs.existsSync(`${file}.md`) && fs.existsSync(`${file}.json`));

    // apply --expect takes the rehearsed governed hash; step 7 without approval waits for the owner: exit 3.
    const apply = await runCli(['apply', '--through', '7', '--expect', report.entryExit.governedHash, '--json'], env);
    assert.equal(apply.code, 3, apply.stderr);
    const refusal = JSON.parse(apply.stdout) as { ok: boolean; code: string; step: number };
    assert.deepEqual([refusal.ok, refusal.code, refusal.step], [false, 'BG428', 7]);

    const rb = await runCli(['rollback', '--to', '0', '--json'], env);
    assert.equal(rb.code, 0, rb.stderr);
    assert.deepEqual((JSON.parse(rb.stdout) as { steps: Array<{ step: number; action: string }> }).steps.filter((s) => s.action === 'down').map((s) => s.step), [5, 4, 3, 2, 1]);
    assert.deepEqual(await catalogFingerprint(db.pool), entry);
  });

  test('rollback --to 6 after a cross-collection birth is refused by step 7\'s precheck (BG428): nothing rolled back', async () => {
    await applyPacket(db.pool, { through: 8, owner: 'test-owner', approvalId: 'APR-KB-7D57-7', reportDir: home });
    // A code born in dot_tools, inserted into pivot_definitions too: born in a second collection.
    const pick = await db.pool.query<{ code: string }>(
      `SELECT d.code FROM dot_tools d WHERE NOT EXISTS (SELECT 1 FROM pivot_definitions p WHERE p.code = d.code)
          AND EXISTS (SELECT 1 FROM birth_registry b WHERE b.entity_code = d.code AND b.collection_name = 'dot_tools')
        ORDER BY d.id LIMIT 1`);
    const code = pick.rows[0]!.code;
    await db.pool.query(`INSERT INTO pivot_definitions (code, name) VALUES ($1, 'cli cross-collection birth')`, [code]);
    const before = await catalogFingerprint(db.pool);

    const rb = await runCli(['rollback', '--to', '6', '--json'], env);
    // README: refused input is exit 2 — and the run is refused before any down.
    assert.equal(rb.code, 2, rb.stderr);
    const refusal = JSON.parse(rb.stdout) as { ok: boolean; code: string; sqlstate: string; step: number; message: string };
    assert.deepEqual([refusal.ok, refusal.code, refusal.sqlstate, refusal.step], [false, 'BG428', 'BG428', 7]);
    assert.match(refusal.message, new RegExp(`refused before any down ran, nothing changed: step 7 .*born in more than one collection \\(${code}\\)`));
    assert.deepEqual(await catalogFingerprint(db.pool), before, 'nothing changed');
    assert.equal((await verifyStep(db.pool, 8)).ok, true, "step 8's pivot births were not rolled back");
  });
});
