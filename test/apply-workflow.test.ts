// The apply packet as a durable workflow (issue 9 item 1, DESIGN §5): applyPacket waits for the
// owner at the one-way door, refuses a wrong approval with its reason, runs step 7 once approved and
// completes; a failure before the door rolls back what the run applied and proves the entry
// fingerprint; a failure past the door parks for an operator and is never rolled back; a re-run is a
// no-op; a killed packet worker's step is retried by the next `birthgate apply`. Real PostgreSQL 16,
// the real Temporal dev server, the real CLI; asserted on the database, the ledger and the history.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Client, WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { NativeConnection, type WorkflowBundleOption } from '@temporalio/worker';
import { workflowMetadataQuery } from '@temporalio/workflow';
import pg from 'pg';
import { checkedStepsRoot } from '../activities/packet.ts';
import {
  approvePacket, decidePacket, PacketDecisionRefusedError, packetFailureOf, readEstate, waitForPacket,
} from '../client/packet.ts';
import { projectRoot } from '../config/index.ts';
import { type ApplyPacketResult, type Estate, packetRollbackWorkflowId, packetTaskQueue, packetWorkflowId } from '../contracts/packet.ts';
import { PacketStep } from '../contracts/search-attributes.ts';
import { createPool } from '../db/pool.ts';
import { loadWorld } from '../fixtures/world.ts';
import { exitCodeOf } from '../cli/commands/packet.ts';
import { applyPacket } from '../packet/apply.ts';
import { PacketError, PacketFailure } from '../packet/errors.ts';
import { catalogFingerprint, diffFingerprints } from '../packet/fingerprint.ts';
import { KB_2590_ENTRY_MD5 } from '../packet/live-bodies.ts';
import { readLease } from '../packet/ledger.ts';
import { verifyStep } from '../packet/step-runner.ts';
import { defaultStepsRoot, discoverSteps } from '../packet/steps.ts';
import { rehearse } from '../rehearsal/rehearse.ts';
import { hostPacketWorker, PACKET_POOL_SIZE, packetBundle } from '../workers/packet-worker.ts';
import { approvePacketUpdate, packetStateQuery } from '../workflows/packet-messages.ts';
import { runCli } from './support/cli.ts';
import { freshDatabase, type FreshDatabase } from './support/db.ts';
import { testEnv } from './support/env.ts';
import { workerPassword } from './support/packet-world.ts';
import { eventually, temporalClient } from './support/temporal.ts';

const scratch = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'apply-workflow-'));
const home = path.join(scratch, 'home');
const lastStep = discoverSteps().at(-1)!.step;
const approval = { owner: 'owner-kb-7d57', approvalId: 'APR-KB-7D57-7' };

async function world(prefix: string): Promise<FreshDatabase> {
  const db = await freshDatabase(prefix);
  await loadWorld(db.pool, { scale: 'test' });
  return db;
}

function cliEnv(db: FreshDatabase): NodeJS.ProcessEnv {
  return { ...process.env, DATABASE_URL: db.url, TEMPORAL_ADDRESS: testEnv().temporalAddress, BIRTHGATE_HOME: home, BIRTHGATE_WORKER_PASSWORD: workerPassword };
}

/** A copy of sql/apply whose step `n` fails before it changes anything (its up.sql raises first). */
function brokenTree(n: number): { root: string; repair(): void } {
  const root = fs.mkdtempSync(path.join(scratch, `steps-${n}-`));
  fs.cpSync(defaultStepsRoot, root, { recursive: true });
  const dir = fs.readdirSync(root).find((d) => d.startsWith(`${String(n).padStart(2, '0')}-`))!;
  const up = path.join(root, dir, 'up.sql');
  const original = fs.readFileSync(up, 'utf8');
  fs.writeFileSync(up, `DO $$ BEGIN RAISE EXCEPTION 'injected failure at step ${n}'; END $$;\n${original}`);
  return { root, repair: () => fs.writeFileSync(up, original) };
}

type Hosted = { estate: Estate; stop(): Promise<void> };

/** A packet worker in this process for `db` (its own admin pool), as the CLI hosts one. */
async function hostWorker(db: FreshDatabase, bundle: WorkflowBundleOption): Promise<Hosted> {
  const { temporalAddress, namespace } = testEnv();
  const pool = createPool(db.url, { max: PACKET_POOL_SIZE, applicationName: 'test-packet-worker' });
  pool.on('error', () => undefined);
  const estate = await readEstate(pool);
  const connection = await NativeConnection.connect({ address: temporalAddress });
  const w = await hostPacketWorker({ connection, namespace, estate, pool, bundle, reportDir: path.join(scratch, 'reports'), workerPassword });
  return {
    estate,
    async stop() {
      await w.stop();
      await connection.close();
      await pool.end();
    },
  };
}

async function ledgerSteps(q: pg.Pool, runId: string): Promise<string[]> {
  const r = await q.query<{ s: string }>(`SELECT step || ' ' || action || ' ' || status AS s FROM birthgate_ledger.apply_step WHERE run_id = $1 ORDER BY id`, [runId]);
  return r.rows.map((x) => x.s);
}

async function runRow(q: pg.Pool, runId: string): Promise<{ status: string; kind: string; error: string | null }> {
  return (await q.query<{ status: string; kind: string; error: string | null }>('SELECT status, kind, error FROM birthgate_ledger.apply_run WHERE run_id = $1', [runId])).rows[0]!;
}

async function updatesAccepted(client: Client, workflowId: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes).length;
}

async function rejectsUpdate(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof WorkflowUpdateFailedError || err instanceof PacketDecisionRefusedError, String(err));
    const why = err instanceof WorkflowUpdateFailedError ? (err.cause as Error).message : (err as Error).message;
    assert.match(why, message);
    return true;
  });
}

describe('the apply packet as a workflow (applyPacket)', () => {
  let a: FreshDatabase; // the owner's door, via the CLI; then the no-op re-run
  let b: FreshDatabase; // a failure before the door, one past it (in-process worker), then the killed worker (CLI)
  let client: Client;
  let closeClient: () => Promise<void>;
  let bundle: WorkflowBundleOption;
  const hosted: Hosted[] = [];
  const children: ChildProcess[] = [];

  before(async () => {
    [a, b] = await Promise.all([world('apply_wf_a'), world('apply_wf_b')]);
    ({ client, close: closeClient } = await temporalClient());
    // Built once into BIRTHGATE_HOME: every CLI call below finds it there.
    bundle = await packetBundle(home);
  });

  after(async () => {
    for (const ch of children) if (ch.exitCode === null && ch.signalCode === null) ch.kill('SIGKILL');
    for (const h of hosted) await h.stop().catch(() => undefined);
    for (const db of [a, b]) {
      if (!db) continue;
      const estate = await readEstate(db.pool).catch(() => undefined);
      if (estate) {
        for (const id of [packetWorkflowId(estate), packetRollbackWorkflowId(estate)]) await client.workflow.getHandle(id).terminate('test teardown').catch(() => undefined);
      }
    }
    await closeClient?.();
    for (const db of [a, b]) await db?.dispose();
  });

  test('it waits at the one-way door (exit 3, PacketStep and current details), refuses a wrong approval with its reason, and completes once the owner approves', async () => {
    const env = cliEnv(a);
    const first = await runCli(['apply', '--json'], env);
    assert.equal(first.code, 3, first.stderr);
    const w = JSON.parse(first.stdout) as { ok: boolean; code: string; step: number; waiting: string; workflowId: string; governedHash: string; runId: string };
    assert.deepEqual([w.ok, w.code, w.step, w.waiting], [false, 'BG428', 7, 'owner']);

    // The database: 1..6 applied, the door shut, the run open, the lease naming this workflow.
    for (let k = 1; k <= 6; k++) assert.equal((await verifyStep(a.pool, k)).ok, true, `step ${k} applied`);
    assert.equal((await verifyStep(a.pool, 7)).ok, false, 'step 7 waits for the owner');
    assert.equal((await runRow(a.pool, w.runId)).status, 'running');
    const lease = await readLease(a.pool);
    assert.equal(lease?.workflowId, w.workflowId);
    assert.equal(lease?.kind, 'apply');

    // The Web UI: the PacketStep search attribute and the current details say what it waits for.
    const handle = client.workflow.getHandle(w.workflowId);
    assert.equal((await handle.describe()).typedSearchAttributes.get(PacketStep), 'WAITING_FOR_OWNER:07');
    const worker = await hostWorker(a, bundle);
    hosted.push(worker);
    const meta = await handle.query(workflowMetadataQuery);
    assert.match(meta.currentDetails ?? '', /WAITING_FOR_OWNER.*step 7/);
    assert.match(meta.currentDetails ?? '', /birthgate approve --owner NAME --approval ID/);

    // While the lease is held: the direct runner and the rehearsal are refused, and so is a second workflow.
    const before = await catalogFingerprint(a.pool);
    await assert.rejects(applyPacket(a.pool, { through: 8, ...approval, reportDir: scratch }), (err: unknown) => {
      assert.ok(err instanceof PacketError && err.code === PacketFailure.Busy, String(err));
      assert.match(err.message, new RegExp(`the packet workflow ${w.workflowId} .* holds the packet lease`));
      assert.equal(exitCodeOf(err), 2);
      return true;
    });
    await assert.rejects(rehearse(a.pool), (err: unknown) => err instanceof PacketError && err.code === PacketFailure.Busy && /holds the packet lease/.test(err.message));
    const second = client.workflow.execute('packetRollback', {
      workflowId: packetRollbackWorkflowId(worker.estate), taskQueue: packetTaskQueue(worker.estate), args: [{ estate: worker.estate, to: 0, requestedBy: 'test' }],
    });
    await assert.rejects(second, (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const f = packetFailureOf(err);
      assert.equal(f.code, PacketFailure.Busy);
      assert.match(f.message, /holds the packet lease for its apply/);
      return true;
    });
    assert.deepEqual(await catalogFingerprint(a.pool), before, 'nothing changed while refused');

    // Refused approvals: the validator answers, and nothing reaches the history.
    await rejectsUpdate(handle.executeUpdate(approvePacketUpdate, { args: [{ owner: '   ', approvalId: 'APR-1' }] }), /invalid approval: owner: owner must not be blank/);
    await rejectsUpdate(handle.executeUpdate(approvePacketUpdate, { args: [{ owner: 'x', approvalId: 'A'.repeat(201) }] }), /approval id must be at most 200 characters/);
    await rejectsUpdate(decidePacket(client, worker.estate, { action: 'retry', actor: 'op' }), /retry refused: the packet is WAITING_FOR_OWNER; only a parked packet is retried/);
    const wrong = await runCli(['approve', ...['--owner', approval.owner, '--approval', approval.approvalId], '--expect', '0'.repeat(64), '--json'], env);
    assert.equal(wrong.code, 3, wrong.stderr);
    assert.match((JSON.parse(wrong.stdout) as { message: string }).message, new RegExp(`approval refused: it approves governed hash 0{64}, the packet waits at the door with ${w.governedHash}`));
    assert.equal(await updatesAccepted(client, w.workflowId), 0, 'a refused approval never reaches the history');
    assert.equal((await verifyStep(a.pool, 7)).ok, false);

    // The owner's approval of exactly the door's state: step 7 runs with it, the packet completes.
    const ok = await runCli(['approve', '--owner', approval.owner, '--approval', approval.approvalId, '--expect', w.governedHash, '--json'], env);
    assert.equal(ok.code, 0, ok.stderr);
    const result = JSON.parse(ok.stdout) as ApplyPacketResult & { ok: boolean };
    assert.deepEqual([result.ok, result.status, result.through, result.workerRole], [true, 'applied', lastStep, true]);
    for (const s of discoverSteps()) assert.equal((await verifyStep(a.pool, s.step)).ok, true, `step ${s.step} applied`);
    const door = await a.pool.query<{ owner: string; approval_id: string; status: string }>(
      `SELECT owner, approval_id, status FROM birthgate_ledger.apply_step WHERE run_id = $1 AND step = 7 AND action = 'up'`, [w.runId]);
    assert.deepEqual(door.rows, [{ owner: approval.owner, approval_id: approval.approvalId, status: 'ok' }], 'the approval is in the ledger with the one-way step');
    assert.equal((await runRow(a.pool, w.runId)).status, 'applied');
    assert.equal(await readLease(a.pool), undefined, 'the lease is released');
    const events = await a.pool.query<{ event: string }>('SELECT event FROM birthgate_ledger.packet_lease_event WHERE workflow_id = $1 ORDER BY id', [w.workflowId]);
    assert.deepEqual(events.rows.map((r) => r.event), ['acquired', 'released']);
    assert.equal(await updatesAccepted(client, w.workflowId), 1, 'exactly the accepted approval is in the history');
    assert.equal((await handle.describe()).typedSearchAttributes.get(PacketStep), `APPLIED:${String(lastStep).padStart(2, '0')}`);
  });

  test('re-running a finished packet is a no-op: every step verifies and is skipped, nothing in the catalog moves', async () => {
    const { estate } = hosted[0]!;
    const before = await catalogFingerprint(a.pool);
    // What `birthgate apply` starts (its CLI path is the test above): a new run of the same workflow id.
    const result = await client.workflow.execute('applyPacket', {
      workflowId: packetWorkflowId(estate), taskQueue: packetTaskQueue(estate), workflowIdConflictPolicy: 'USE_EXISTING', workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      args: [{ estate, grantWorker: true, requestedBy: 'test' }],
    }) as ApplyPacketResult;
    await hosted[0]!.stop();
    assert.equal(result.status, 'applied');
    assert.deepEqual(new Set(result.steps.map((s) => s.action)), new Set(['skip']));
    assert.equal(result.steps.length, lastStep);
    assert.equal(result.workerRole, false, 'a run that applied nothing leaves birthgate_worker as it is');
    assert.deepEqual(await catalogFingerprint(a.pool), before);
    assert.ok((await ledgerSteps(a.pool, result.ledgerRunId)).every((s) => / skip ok$/.test(s)));
  });

  test('a failure injected at step 5 rolls back 4..1 and the catalog equals the entry fingerprint', async () => {
    const worker = await hostWorker(b, bundle);
    hosted.push(worker);
    const tree = brokenTree(5);
    const entry = await catalogFingerprint(b.pool);
    const run = client.workflow.execute('applyPacket', {
      workflowId: packetWorkflowId(worker.estate), taskQueue: packetTaskQueue(worker.estate),
      args: [{ estate: worker.estate, stepsRoot: tree.root, requestedBy: 'test' }],
    });
    let failure: ReturnType<typeof packetFailureOf> | undefined;
    await assert.rejects(run, (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      failure = packetFailureOf(err);
      return true;
    });
    assert.equal(failure!.code, PacketFailure.StepFailed);
    assert.equal(failure!.step, 5);
    assert.match(failure!.message, /injected failure at step 5; rolled back 4, 3, 2, 1 — catalog back at the entry fingerprint/);
    assert.deepEqual(failure!.rolledBack!.map((v) => `${v.step} ${v.action}`), ['4 down', '3 down', '2 down', '1 down']);
    assert.equal(failure!.proof?.equal, true);

    assert.deepEqual(await catalogFingerprint(b.pool), entry, 'the catalog is back at the entry fingerprint');
    assert.deepEqual(await ledgerSteps(b.pool, failure!.runId!), [
      '1 up ok', '2 up ok', '3 up ok', '4 up ok', '5 up failed', '4 down ok', '3 down ok', '2 down ok', '1 down ok',
    ]);
    assert.equal((await runRow(b.pool, failure!.runId!)).status, 'rolled_back');
    assert.equal(await readLease(b.pool), undefined);
    const handle = client.workflow.getHandle(packetWorkflowId(worker.estate));
    assert.equal((await handle.describe()).typedSearchAttributes.get(PacketStep), 'ROLLED_BACK:01');

    // Another packet tree is SQL run as the admin: outside the project only under NODE_ENV=test.
    assert.throws(() => checkedStepsRoot(tree.root, { NODE_ENV: 'production' }), /outside the project/);
    assert.equal(checkedStepsRoot(path.join(projectRoot, 'sql', 'apply'), {}), fs.realpathSync(defaultStepsRoot));
  });

  test('an owner who expects production\'s live bodies (KB-2590 md5s) is refused at step 4 on another body, and the packet rolls back to entry', async () => {
    // The packet worker of database b (the step-5 test hosted it; a's is another estate's).
    const bEstate = await readEstate(b.pool);
    let worker = hosted.find((h) => h.estate.database === bEstate.database);
    if (!worker) hosted.push((worker = await hostWorker(b, bundle)));
    const entry = await catalogFingerprint(b.pool);
    const run = client.workflow.execute('applyPacket', {
      workflowId: packetWorkflowId(worker.estate), taskQueue: packetTaskQueue(worker.estate),
      args: [{ estate: worker.estate, expectLiveMd5: KB_2590_ENTRY_MD5, requestedBy: 'test' }],
    });
    let failure: ReturnType<typeof packetFailureOf> | undefined;
    await assert.rejects(run, (err: unknown) => ((failure = packetFailureOf(err as WorkflowFailedError)), true));
    assert.equal(failure!.step, 4, JSON.stringify(failure));
    assert.match(failure!.message, /fn_birth_registry_auto/);
    assert.deepEqual(diffFingerprints(entry, await catalogFingerprint(b.pool)).map((d) => d.path), [], 'nothing stays changed');
    assert.equal(await readLease(b.pool), undefined);
  });

  test('a failure past the one-way door parks for an operator, nothing is rolled back, and a retry re-runs the step', async () => {
    const worker = hosted.at(-1)!;
    const tree = brokenTree(9);
    const handle = await client.workflow.start('applyPacket', {
      workflowId: packetWorkflowId(worker.estate), taskQueue: packetTaskQueue(worker.estate),
      args: [{ estate: worker.estate, through: 9, stepsRoot: tree.root, requestedBy: 'test' }], workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    });
    const door = await waitForPacket(client, handle);
    assert.equal(door.kind === 'waiting' && door.state.stage, 'WAITING_FOR_OWNER');
    await approvePacket(client, worker.estate, approval);
    const parked = await waitForPacket(client, handle);
    assert.ok(parked.kind === 'waiting', JSON.stringify(parked));
    assert.deepEqual([parked.state.stage, parked.state.step], ['PARKED', 9]);
    assert.match(parked.state.error?.message ?? '', /injected failure at step 9/);
    assert.equal((await handle.describe()).typedSearchAttributes.get(PacketStep), 'PARKED:09');

    // Never rolled back past the door: 1..8 stay applied, no down in the ledger.
    for (let k = 1; k <= 8; k++) assert.equal((await verifyStep(b.pool, k)).ok, true, `step ${k} stays applied`);
    const runId = parked.state.ledgerRunId!;
    assert.ok(!(await ledgerSteps(b.pool, runId)).some((s) => / down /.test(s)));
    assert.equal((await runRow(b.pool, runId)).status, 'running', 'the run waits for its operator');
    await rejectsUpdate(approvePacket(client, worker.estate, approval), /approval refused: the packet is PARKED at step 9/);

    // A retry re-runs the step: still broken, it parks again.
    await decidePacket(client, worker.estate, { action: 'retry', actor: 'operator-1', reason: 'try again' });
    const again = await waitForPacket(client, handle);
    assert.ok(again.kind === 'waiting' && again.state.stage === 'PARKED' && again.state.step === 9, JSON.stringify(again));
    // The operator repairs the cause and retries with the CLI: the step runs again and the packet completes.
    tree.repair();
    const retried = await runCli(['packet', 'retry', '--actor', 'operator-1', '--reason', 'step 9 repaired', '--json'], cliEnv(b));
    assert.equal(retried.code, 0, retried.stderr);
    const done = JSON.parse(retried.stdout) as ApplyPacketResult;
    assert.deepEqual([done.status, done.through], ['applied', 9]);
    assert.equal((await verifyStep(b.pool, 9)).ok, true);
    assert.deepEqual((await ledgerSteps(b.pool, runId)).filter((s) => s.startsWith('9 ')), ['9 up failed', '9 up failed', '9 up ok']);
    assert.equal((await runRow(b.pool, runId)).status, 'applied');
    const decisions = (await client.workflow.getHandle(handle.workflowId).query(packetStateQuery)).decisions;
    assert.deepEqual(decisions.map((d) => `${d.kind} ${d.actor} ${d.accepted}`), [`approve ${approval.owner} true`, 'retry operator-1 true', 'retry operator-1 true']);
  });

  test('a worker killed mid-step resumes: the next `birthgate apply` attaches and the step is retried', async () => {
    const c = b; // past the door at step 9: `birthgate apply` goes on with 10.. without waiting
    await hosted.at(-1)!.stop(); // only the CLI's packet worker runs this packet now
    const env = cliEnv(c);
    // Live traffic holding birth_registry: the packet's DDL on it waits (lock_timeout, retried).
    const holder = new pg.Client({ connectionString: c.url, application_name: 'test-lock-holder' });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE birth_registry IN SHARE ROW EXCLUSIVE MODE');

    const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'birthgate.mjs'), 'apply', '--json'], { env, stdio: 'pipe' });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Mid-step: the ledger has the step running and its DDL waits on the lock.
    const stuck = await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`the apply exited early:\n${out}`);
      const r = await c.pool.query<{ step: number }>(
        `SELECT s.step FROM birthgate_ledger.apply_step s WHERE s.status = 'running' AND s.action = 'up'
            AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = current_database() AND a.application_name = 'birthgate-apply' AND a.wait_event_type = 'Lock')`,
      ).catch(() => ({ rows: [] as { step: number }[] }));
      return r.rows[0]?.step;
    }, 'a packet step waiting on the lock', 60_000);
    const workflowId = packetWorkflowId(await readEstate(c.pool));
    const killedRun = (await client.workflow.getHandle(workflowId).describe()).runId;
    child.kill('SIGKILL');
    await exited;
    await holder.query('ROLLBACK');
    await holder.end();

    const again = await runCli(['apply', '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    const result = JSON.parse(again.stdout) as ApplyPacketResult;
    assert.equal(result.workflowId, workflowId);
    assert.equal((await client.workflow.getHandle(workflowId).describe()).runId, killedRun, 'it attached to the run whose worker was killed');
    assert.deepEqual([result.status, result.through], ['applied', lastStep]);
    for (const s of discoverSteps()) assert.equal((await verifyStep(c.pool, s.step)).ok, true, `step ${s.step} applied`);
    const rows = (await ledgerSteps(c.pool, result.ledgerRunId)).filter((s) => s.startsWith(`${stuck} `));
    assert.deepEqual(rows, [`${stuck} up running`, `${stuck} up ok`], 'the killed attempt never finished; the retry did the step');
    const invalid = await c.pool.query(`SELECT 1 FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE NOT i.indisvalid`);
    assert.equal(invalid.rowCount, 0, 'no INVALID index left behind');
    // The history: the step's activity was retried (a second attempt started after the first timed out).
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const retried = (history.events ?? []).filter((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 1) >= 2);
    assert.ok(retried.length >= 1, 'a retried activity attempt is in the history');
  });
});
