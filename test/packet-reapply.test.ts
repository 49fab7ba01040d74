// Re-running `birthgate apply` on an applied estate (packet/README.md "Re-running the packet"): what the
// estate legitimately does after the packet must not make it look unapplied or drifted. (a) A break-glass
// birth of a code outside the family code rule leaves step 13 applied: a re-run is "already applied"
// (exit 0) and the rehearsal passes. (b) The estate owner's DDL on a governed table, accepted by an
// operator's rebaseline, is no drift for the runner either; a change nobody accepted is still refused
// (ENTRY_DRIFT, exit 3: blocked until an operator repairs or rebaselines), and on the next try too. One estate for both, in order. Real PostgreSQL 16, the
// real Temporal dev server, admission worker and CLI; asserted on the ledger and the catalog.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { admitByCode, breakGlass } from '../client/admissions.ts';
import { readEstate } from '../client/packet.ts';
import { packetWorkflowId } from '../contracts/packet.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { entryCheck } from '../packet/apply.ts';
import { catalogFingerprint } from '../packet/fingerprint.ts';
import { verifyStep } from '../packet/step-runner.ts';
import { discoverSteps } from '../packet/steps.ts';
import { packetBundle } from '../workers/packet-worker.ts';
import { asDirectus } from './support/attacker.ts';
import { runCli } from './support/cli.ts';
import type { FreshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';
import { workerPassword, workerUrl, worldDatabase } from './support/packet-world.ts';
import { startAdmissionWorker, temporalClient, uniqueTaskQueue } from './support/temporal.ts';

const scratch = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'packet-reapply-'));
const home = path.join(scratch, 'home');
const lastStep = discoverSteps().at(-1)!.step;
const operator = { actor: 'ops@reapply.test', reason: 'owner-approved exception to the code rule' };

type Run = { run_id: string; status: string; error_code: string | null };
const runs = async (pool: Pool): Promise<Run[]> =>
  (await pool.query<Run>('SELECT run_id::text, status, error_code FROM birthgate_ledger.apply_run ORDER BY run_id')).rows;
const stepRows = async (pool: Pool, runId: string): Promise<string[]> =>
  (await pool.query<{ a: string }>(`SELECT step || ':' || action || ':' || status AS a FROM birthgate_ledger.apply_step WHERE run_id = $1 ORDER BY step`, [runId])).rows.map((r) => r.a);

/** `birthgate apply --json` on an applied estate: exit 0, every step skipped, the ledger run applied with skip rows only, the catalog unmoved. */
async function reapplyIsNoOp(db: FreshDatabase, env: NodeJS.ProcessEnv): Promise<void> {
  const before = await catalogFingerprint(db.pool);
  const r = await runCli(['apply', '--json'], env);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { ok: boolean; status: string; through: number; ledgerRunId: string; steps: Array<{ step: number; action: string }> };
  assert.deepEqual([out.ok, out.status, out.through], [true, 'applied', lastStep]);
  assert.deepEqual(out.steps.map((s) => s.action), Array.from({ length: lastStep }, () => 'skip'), 'already applied: every step skipped');
  assert.match(r.stderr, /already applied, skipped/);
  const run = (await runs(db.pool)).find((x) => x.run_id === out.ledgerRunId);
  assert.deepEqual(run, { run_id: out.ledgerRunId, status: 'applied', error_code: null });
  assert.deepEqual(await stepRows(db.pool, out.ledgerRunId), Array.from({ length: lastStep }, (_, k) => `${k + 1}:skip:ok`));
  assert.deepEqual(await catalogFingerprint(db.pool), before, 'the no-op re-run changed nothing in the catalog');
}

/** `birthgate apply --json` refused by the entry drift check: exit 3 (blocked for a human), the run refused in the ledger, nothing changed. */
async function reapplyRefused(db: FreshDatabase, env: NodeJS.ProcessEnv): Promise<string> {
  const before = await catalogFingerprint(db.pool);
  const r = await runCli(['apply', '--json'], env);
  assert.equal(r.code, 3, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout) as { code: string; runId: string; message: string };
  assert.equal(out.code, 'ENTRY_DRIFT');
  assert.deepEqual((await runs(db.pool)).find((x) => x.run_id === out.runId), { run_id: out.runId, status: 'refused', error_code: 'ENTRY_DRIFT' });
  assert.deepEqual(await stepRows(db.pool, out.runId), [], 'no step ran');
  assert.deepEqual(await catalogFingerprint(db.pool), before, 'nothing changed');
  return out.message;
}

/** As the estate owner (directus, no superuser): one statement on its own table. */
async function asOwner(db: FreshDatabase, sql: string): Promise<void> {
  const directus = await asDirectus(db.url);
  try {
    await directus.c.query(sql);
  } finally {
    await directus.end();
  }
}

describe('re-running the packet on an applied estate', () => {
  let db: FreshDatabase;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    db = await worldDatabase('reapply');
    db.pool.on('error', () => undefined);
    env = { ...process.env, DATABASE_URL: db.url, TEMPORAL_ADDRESS: testEnv().temporalAddress, BIRTHGATE_HOME: home, BIRTHGATE_WORKER_PASSWORD: workerPassword };
    await packetBundle(home); // built once into BIRTHGATE_HOME: every CLI call below finds it there
    const first = await runCli(['apply', '--owner', 'owner-kb-7d57', '--approval', 'APR-KB-7D57-7', '--json'], env);
    assert.equal(first.code, 0, first.stderr);
  });

  after(async () => {
    if (!db) return;
    const { client, close } = await temporalClient();
    const estate = await readEstate(db.pool).catch(() => undefined);
    if (estate) await client.workflow.getHandle(packetWorkflowId(estate)).terminate('test teardown').catch(() => undefined);
    await close();
    await db.dispose();
  });

  test('a break-glass birth of a code outside the family rule leaves step 13 applied: apply again is "already applied" (exit 0) and the rehearsal passes', async () => {
    const { client, close } = await temporalClient();
    const workerPool = createPool(workerUrl(db.url), { max: 4, applicationName: 'test-reapply-worker' });
    workerPool.on('error', () => undefined);
    const taskQueue = uniqueTaskQueue('reapply');
    const worker = await startAdmissionWorker({ taskQueue, pool: workerPool });
    const code = `Tool_Reapply_${process.pid}`;
    try {
      const parked = await admitByCode(client, { code, requestedBy: 'test' }, { taskQueue, wait: true });
      assert.equal(parked.parked?.stage, 'BLOCKED', 'the code rule parks it');
      await breakGlass(client, db.pool, { code }, { ...operator, approvalId: 'APR-BG-REAPPLY' });
      const born = await admitByCode(client, { code, requestedBy: 'test' }, { taskQueue, wait: true });
      assert.equal(born.result?.breakGlass, true);
    } finally {
      await worker.stop();
      await workerPool.end();
      await close();
    }
    // The database: born under the glass, and the rule's coverage now says STOP for dot_tools — exactly
    // what the old verify read as "step 13 not applied".
    const row = await db.pool.query<{ rule_ok: boolean; glass: number; births: number }>(
      `SELECT fn_family_code_rule('dot_tools', d.code) AS rule_ok,
              (SELECT count(*)::int FROM birth_break_glass g JOIN birth_admission_permit p USING (permit_id)
                WHERE g.entity_code = d.code AND p.state = 'FINALIZED' AND p.row_id = d.id) AS glass,
              (SELECT count(*)::int FROM birth_registry b WHERE b.entity_code = d.code AND b.collection_name = 'dot_tools') AS births
         FROM dot_tools d WHERE d.code = $1`, [code]);
    assert.deepEqual(row.rows, [{ rule_ok: false, glass: 1, births: 1 }]);
    const coverage = await db.pool.query<{ status: string; failing: string }>(`SELECT status, failing::text FROM v_birth_code_rule_coverage WHERE collection_name = 'dot_tools'`);
    assert.deepEqual(coverage.rows, [{ status: 'STOP', failing: '1' }]);
    assert.equal((await verifyStep(db.pool, 13)).ok, true, 'step 13 is still applied');

    await reapplyIsNoOp(db, env);
    const rehearsal = await runCli(['rehearse', '--json', '--report', path.join(scratch, 'rehearsal-after-break-glass')], env);
    assert.equal(rehearsal.code, 0, rehearsal.stderr);
    const report = JSON.parse(rehearsal.stdout) as { status: string; feasibility: { steps: Array<{ step: number; ran: boolean; ok: boolean }> } };
    assert.equal(report.status, 'PASS');
    assert.deepEqual(report.feasibility.steps.filter((s) => s.ran || !s.ok), [], 'the rehearsal found every step applied, step 13 included');
  });

  test('an owner change to a governed table accepted by a rebaseline: apply again exits 0 as a no-op; a change nobody accepted is refused (exit 3, blocked for an operator), twice', async () => {
    // The estate owner gives a governed table's column a default: DDL the drift watch reports.
    await asOwner(db, `ALTER TABLE public.dot_tools ALTER COLUMN category SET DEFAULT 'general'`);
    await db.pool.query(`SELECT fn_drift_watch_tick('test')`);
    const drift = await runCli(['drift', '--json'], env);
    assert.equal(drift.code, 3, drift.stderr);
    const open = (JSON.parse(drift.stdout) as { open: Array<{ dim: string; name: string }> }).open;
    assert.deepEqual(open.map((f) => [f.dim, f.name]), [['gate_drift', 'ALTER TABLE public.dot_tools']]);
    const before = await entryCheck(db.pool);
    assert.equal(before.ok, false, 'not yet accepted');
    assert.deepEqual(before.diff.map((d) => d.path), ['relations.dot_tools.columns']);

    const rb = await runCli(['rebaseline', '--owner', 'owner-o', '--reason', 'category default accepted', '--approval', 'APR-RB-1', '--json'], env);
    assert.equal(rb.code, 0, rb.stderr);
    const set = (JSON.parse(rb.stdout) as { baseline_set: string }).baseline_set;
    const logged = await db.pool.query(`SELECT actor, approval_id FROM birth_drift_rebaseline WHERE baseline_set = $1`, [set]);
    assert.deepEqual(logged.rows, [{ actor: 'owner-o', approval_id: 'APR-RB-1' }]);

    // The runner's own record still differs; the operator's rebaseline since is what accepts it.
    const accepted = await entryCheck(db.pool);
    assert.equal(accepted.ok, true, JSON.stringify(accepted.checks));
    assert.deepEqual(accepted.diff.map((d) => d.path), ['relations.dot_tools.columns']);
    assert.equal(accepted.acceptedBy?.baselineSet, set);
    assert.match(accepted.checks.find((c) => c.check === 'recorded baseline')!.detail, new RegExp(`accepted by the operator's rebaseline ${set} \\(owner owner-o, approval APR-RB-1`));
    await reapplyIsNoOp(db, env);
    assert.deepEqual((await entryCheck(db.pool)).diff, [], 'the re-run recorded the accepted state as the runner\'s');

    // The same kind of change, nobody accepts it: refused, and a second try is refused the same way
    // (the refused run's exit is not taken for the runner's record).
    await asOwner(db, `ALTER TABLE public.dot_tools ALTER COLUMN category SET DEFAULT 'other'`);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const message = await reapplyRefused(db, env);
      assert.match(message, /recorded baseline — 1 governed difference\(s\) since run \d+: relations\.dot_tools\.columns; no operator rebaseline since/, `attempt ${attempt}`);
      assert.match(message, /in-database baselines — fn_drift_check\(\): ddl ALTER TABLE public\.dot_tools DDL/, `attempt ${attempt}`);
    }

    // A rebaseline accepts what was there when it was taken, not a change made after it.
    await runCli(['rebaseline', '--owner', 'owner-o', '--reason', 'second default accepted', '--approval', 'APR-RB-2', '--json'], env);
    await asOwner(db, `ALTER TABLE public.dot_tools ALTER COLUMN category DROP DEFAULT`);
    const late = await entryCheck(db.pool);
    assert.equal(late.ok, false);
    assert.equal(late.acceptedBy, null);
    assert.match(late.checks.find((c) => c.check === 'recorded baseline')!.detail, /does not cover it: the drift monitor reports changes after it/);
  });
});
