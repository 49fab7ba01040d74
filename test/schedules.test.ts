// The Temporal Schedules (issue 9 item 2a; KB-7D57 / KB-4410 §E "external scheduler"): created
// idempotently, listed with their interval, overlap policy and catch-up window, and each one's tick
// doing its job on the real dev server (or TEMPORAL_ADDRESS) and a real PostgreSQL 16 with the packet
// through its last step: the permit-expiry sweep (TTL, closed runs, an admission whose own permit
// expired), the drift watch (first/last seen, fail closed, the logged rebaseline), the refusals of each
// role, and step 17's rollback. The ticks run on the real admission worker as birthgate_worker.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { randomInt } from 'node:crypto';
import { ApplicationFailure, ScheduleOverlapPolicy, WorkflowFailedError } from '@temporalio/client';
import pg from 'pg';
import { type DriftWatchResult, type PermitSweepResult, scheduleActivities } from '../activities/schedules.ts';
import { admitByCode, retry } from '../client/admissions.ts';
import {
  applySchedules, deleteSchedules, driftFindings, DRIFT_WATCH, listSchedules, PERMIT_EXPIRY, rebaseline, runScheduleNow, scheduleId, SCHEDULES,
} from '../client/schedules.ts';
import { createPool, type Pool } from '../db/pool.ts';
import { admissionHarness, type AdmissionHarness, freshCode, permitTransitions, written } from './support/admission-harness.ts';
import { alterTriggers, asDirectus, gateTriggers, type Session, superuserRemoveRows } from './support/attacker.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { applyStep, applyStepsSql, catalogFingerprint, packetSteps, rollbackStep, verifyStep } from './support/packet-sql.ts';
import { installOperatorLogin, operatorLogin, operatorUrl, rejectsWith, worldDatabase } from './support/packet-world.ts';
import { eventually, type RunningWorker, startAdmissionWorker, uniqueTaskQueue } from './support/temporal.ts';

/** Fails the registered dot_tools code rule: the admission parks (a stuck birth holding a REQUESTED permit). */
const stuckCode = () => `Sched_Stuck_${randomInt(1e8, 1e9)}`;

type Finding = { finding_id: string; finding_key: string; dim: string; kind: string | null; name: string | null; drift: string | null;
  ticks: number; first_seen: Date; last_seen: Date; resolved_at: Date | null; resolved_by: string | null };

describe('the Schedules on the real stack', () => {
  let h: AdmissionHarness;
  let operator: Pool;
  let su: pg.Client;
  let cliEnv: NodeJS.ProcessEnv;
  let firstApply: Awaited<ReturnType<typeof applySchedules>>;
  const extraWorkers: RunningWorker[] = [];
  const started: string[] = [];
  const home = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'schedules-'));
  const sweep = () => runScheduleNow<PermitSweepResult>(h.client, scheduleId(h.taskQueue, PERMIT_EXPIRY.name));
  const watch = () => runScheduleNow<DriftWatchResult>(h.client, scheduleId(h.taskQueue, DRIFT_WATCH.name));
  const openFindings = async () => (await h.db.pool.query<Finding>(
    'SELECT * FROM birth_drift_finding WHERE resolved_at IS NULL ORDER BY finding_id')).rows;
  const guard = async () => (await h.db.pool.query<{ findings: number }>('SELECT findings FROM birth_admission_guard')).rows[0]!.findings;

  before(async () => {
    h = await admissionHarness('schedules');
    await installOperatorLogin(h.db.pool);
    operator = createPool(operatorUrl(h.db.url), { max: 2, applicationName: 'test-operator' });
    su = new pg.Client({ connectionString: h.db.url, application_name: 'test-superuser' });
    su.on('error', () => undefined);
    await su.connect();
    firstApply = await applySchedules(h.client, { taskQueue: h.taskQueue });
    const { temporalAddress, namespace } = testEnv();
    cliEnv = {
      PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'test',
      DATABASE_URL: h.db.url, BIRTHGATE_OPERATOR_DATABASE_URL: operatorUrl(h.db.url),
      TEMPORAL_ADDRESS: temporalAddress, TEMPORAL_NAMESPACE: namespace, BIRTHGATE_TASK_QUEUE: h.taskQueue, BIRTHGATE_HOME: home,
    };
  });
  after(async () => {
    if (h) await deleteSchedules(h.client, { taskQueue: h.taskQueue }).catch(() => undefined);
    for (const id of started) await h?.client.workflow.getHandle(id).terminate('test teardown').catch(() => undefined);
    for (const w of extraWorkers) await w.stop();
    await su?.end().catch(() => undefined);
    await operator?.end();
    await h?.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  test('schedules apply creates both Schedules as declared, a second apply changes nothing, a changed one is brought back; the CLI lists interval, overlap and catch-up', async () => {
    assert.deepEqual(firstApply.map((a) => [a.scheduleId, a.outcome]),
      SCHEDULES.map((d) => [scheduleId(h.taskQueue, d.name), 'created']));
    assert.deepEqual((await applySchedules(h.client, { taskQueue: h.taskQueue })).map((a) => a.outcome), ['unchanged', 'unchanged']);

    // Someone edits the watch by hand: apply puts its declaration back, and keeps it paused if it was.
    const handle = h.client.schedule.getHandle(scheduleId(h.taskQueue, DRIFT_WATCH.name));
    await handle.update((prev) => ({ ...prev, spec: { intervals: [{ every: '5m' }] }, policies: { ...prev.policies, overlap: ScheduleOverlapPolicy.ALLOW_ALL } }));
    const drifted = (await listSchedules(h.client, { taskQueue: h.taskQueue })).find((v) => v.name === DRIFT_WATCH.name)!;
    assert.deepEqual(drifted.server?.differences, ['every: 300000 → 60000', 'overlap: ALLOW_ALL → SKIP']);
    const second = await applySchedules(h.client, { taskQueue: h.taskQueue });
    assert.deepEqual(second.map((a) => a.outcome), ['unchanged', 'updated']);
    const d = await handle.describe();
    assert.equal(d.spec.intervals?.[0]?.every, 60_000);
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal(d.policies.catchupWindow, 60_000);
    assert.equal(d.action.workflowType, 'driftWatchTick');
    assert.equal(d.action.taskQueue, h.taskQueue);

    const cli = await runCli(['schedules', '--json'], cliEnv);
    assert.equal(cli.code, 0, cli.stderr);
    const listed = JSON.parse(cli.stdout) as Array<{ scheduleId: string; workflowType: string; server: { everyMs: number; overlap: string; catchupWindowMs: number; differences: string[]; nextRun: string | null } }>;
    assert.deepEqual(listed.map((v) => [v.scheduleId, v.workflowType, v.server.everyMs, v.server.overlap, v.server.catchupWindowMs, v.server.differences.length]), [
      [scheduleId(h.taskQueue, 'permit-expiry'), 'permitExpirySweep', 60_000, 'SKIP', 60_000, 0],
      [scheduleId(h.taskQueue, 'drift-watch'), 'driftWatchTick', 60_000, 'SKIP', 60_000, 0],
    ]);
    assert.ok(listed.every((v) => v.server.nextRun), 'each has a next run');
    const human = await runCli(['schedules'], cliEnv);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /every 1m · overlap SKIP · catch-up window 1m · active/);
    assert.match(human.stdout, /why every 1m: /);

    // From here on a tick happens only when a test triggers one (a paused Schedule still takes a
    // triggered action), so no scheduled tick races an assertion; apply keeps an operator's pause.
    for (const s of SCHEDULES) await h.client.schedule.getHandle(scheduleId(h.taskQueue, s.name)).pause('test: ticks on trigger only');
    assert.deepEqual((await applySchedules(h.client, { taskQueue: h.taskQueue })).map((a) => a.outcome), ['unchanged', 'unchanged']);
    assert.ok((await listSchedules(h.client, { taskQueue: h.taskQueue })).every((v) => v.server?.paused), 'still paused after apply');

    // The CLI's apply also starts the estate's governance handoff (once: a second apply finds it running).
    const viaCli = await runCli(['schedules', 'apply', '--json'], cliEnv);
    assert.equal(viaCli.code, 0, viaCli.stderr);
    const out = JSON.parse(viaCli.stdout) as { schedules: Array<{ outcome: string }>; handoff: { workflowId: string; started: boolean } };
    assert.deepEqual(out.schedules.map((a) => a.outcome), ['unchanged', 'unchanged']);
    const again = JSON.parse((await runCli(['schedules', 'apply', '--json'], cliEnv)).stdout) as typeof out;
    assert.equal(again.handoff.workflowId, out.handoff.workflowId);
    assert.equal(again.handoff.started, false, 'a second apply attaches to the running handoff');
    const tail = h.client.workflow.getHandle(out.handoff.workflowId);
    assert.equal((await tail.describe()).status.name, 'RUNNING');
    await tail.terminate('test: the handoff has its own tests (test/handoff.test.ts)');
  });

  test('an abandoned permit expires within one tick of the permit-expiry Schedule; one within its TTL stays RESERVED', async () => {
    const issue = async (code: string, ttl: number) => (await h.workerPool.query<{ permit_id: string }>(
      `SELECT permit_id::text FROM fn_permit_issue($1, $2, 'dot_tools', $3, 'test-dot', NULL, NULL)`, [`abandoned:${code}`, code, ttl])).rows[0]!.permit_id;
    const abandoned = await issue(freshCode(), 1);
    const live = await issue(freshCode(), 600);
    await eventually(async () => (await h.db.pool.query(`SELECT 1 FROM birth_admission_permit WHERE permit_id = $1 AND expires_at < clock_timestamp()`, [abandoned])).rowCount ? true : undefined, 'the TTL to pass', 5_000);

    const tick = await sweep();
    assert.ok(tick.result.expired >= 1, JSON.stringify(tick.result));
    const state = async (id: string) => (await h.db.pool.query<{ state: string }>('SELECT state FROM birth_admission_permit WHERE permit_id = $1', [id])).rows[0]!.state;
    assert.equal(await state(abandoned), 'EXPIRED');
    assert.equal(await state(live), 'RESERVED');
    const last = (await h.db.pool.query(`SELECT from_state, to_state, actor, reason FROM birth_admission_permit_transition
                                          WHERE permit_id = $1 ORDER BY transition_id DESC LIMIT 1`, [abandoned])).rows[0];
    assert.deepEqual(last, { from_state: 'RESERVED', to_state: 'EXPIRED', actor: 'permit-expiry-sweep', reason: 'TTL elapsed' });
    await h.workerPool.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'test', 'test done')`, [live]);
  });

  test('a permit of a terminated workflow is cancelled by the next tick, logged with its run; a parked admission keeps its permit; an owner unknown to Temporal is left alone', async () => {
    const [gone, parked] = [stuckCode(), stuckCode()];
    for (const code of [gone, parked]) {
      const a = await admitByCode(h.client, { code, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue, wait: true });
      assert.ok(a.parked?.permit, `${code} parked holding its permit`);
      started.push(a.workflowId);
    }
    const permitOf = async (code: string) => (await written(h.db.pool, code)).permits[0]!;
    assert.equal((await permitOf(gone)).state, 'REQUESTED');
    const goneHandle = h.client.workflow.getHandle(started.at(-2)!);
    const goneRun = (await goneHandle.describe()).runId;
    await goneHandle.terminate('test: the DOT that asked is gone');
    // A permit whose workflow Temporal never heard of (issued by hand): not proof of anything, left alone.
    const orphanCode = freshCode();
    const orphan = (await h.workerPool.query<{ permit_id: string }>(
      `SELECT permit_id::text FROM fn_permit_issue($1, $2, 'dot_tools', 600, 'test-dot', $3, 'no-such-run')`,
      [`orphan:${orphanCode}`, orphanCode, `no-such-workflow:${orphanCode}`])).rows[0]!.permit_id;

    const tick = await sweep();
    const goneId = (await permitOf(gone)).permit_id;
    assert.deepEqual(tick.result.reconciled.filter((r) => r.permitId === goneId),
      [{ permitId: goneId, workflowId: started.at(-2)!, from: 'REQUESTED', to: 'CANCELLED', runStatus: 'TERMINATED' }]);
    assert.ok(tick.result.skipped.some((s) => s.permitId === orphan && /not found/.test(s.why)), JSON.stringify(tick.result.skipped));
    assert.equal((await permitOf(gone)).state, 'CANCELLED');
    assert.equal((await permitOf(parked)).state, 'REQUESTED', 'a running (parked) admission keeps its permit');
    assert.equal((await h.db.pool.query<{ state: string }>('SELECT state FROM birth_admission_permit WHERE permit_id = $1', [orphan])).rows[0]!.state, 'RESERVED');
    const logged = (await h.db.pool.query<{ actor: string; reason: string }>(
      `SELECT actor, reason FROM birth_admission_permit_transition WHERE permit_id = $1 AND to_state = 'CANCELLED'`, [goneId])).rows;
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.actor, 'permit-expiry-sweep');
    assert.match(logged[0]!.reason, new RegExp(`owning workflow ${started.at(-2)!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is closed: run ${goneRun} TERMINATED at .* \\(the permit was requested by run ${goneRun}\\)`));

    // The parked one, terminated too: the next tick cancels it as well, and a tick after that finds nothing to do.
    const parkedId = (await permitOf(parked)).permit_id;
    await h.client.workflow.getHandle(started.at(-1)!).terminate('test: done');
    assert.deepEqual((await sweep()).result.reconciled.map((r) => [r.permitId, r.to]), [[parkedId, 'CANCELLED']]);
    assert.equal((await permitOf(parked)).state, 'CANCELLED');
    assert.deepEqual((await sweep()).result.reconciled, []);
    await h.workerPool.query(`SELECT fn_permit_transition($1, 'CANCELLED', 'test', 'test done')`, [orphan]);
  });

  test('an admission whose own permit expired while its worker was away fails cleanly; a fresh admission of the code is born under a new permit', async () => {
    // A worker that "crashes" right after the permit committed (the after-permit-issue crash point):
    // its issuePermit attempts fail until the outage ends, so the admission holds a RESERVED permit
    // it cannot use. The TTL (30 s at least) is made to pass by moving expires_at back.
    let outage = true;
    const tq = uniqueTaskQueue('schedules-outage');
    extraWorkers.push(await startAdmissionWorker({
      taskQueue: tq, pool: h.workerPool,
      hooks: { at: (point) => { if (point === 'after-permit-issue' && outage) throw new Error('test: worker away after the permit committed'); } },
    }));
    const code = freshCode();
    const a = await admitByCode(h.client, { code, requestedBy: 'test-dot', permitTtlSeconds: 30 }, { taskQueue: tq });
    started.push(a.workflowId);
    const permit = await eventually(async () => (await written(h.db.pool, code)).permits.find((p) => p.state === 'RESERVED'), 'the permit RESERVED', 20_000);
    await su.query(`UPDATE birth_admission_permit SET expires_at = clock_timestamp() - interval '1 second' WHERE permit_id = $1`, [permit.permit_id]);
    assert.ok((await sweep()).result.expired >= 1);
    assert.equal((await written(h.db.pool, code)).permits[0]!.state, 'EXPIRED');
    outage = false;

    await assert.rejects(h.client.workflow.getHandle(a.workflowId).result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      assert.match(String((err.cause as Error).message), /PERMIT_UNUSABLE: permit \d+ came back EXPIRED/);
      return true;
    });
    const w = await written(h.db.pool, code);
    assert.deepEqual({ rows: w.rows, births: w.births.length, states: w.permits.map((p) => p.state) }, { rows: 0, births: 0, states: ['EXPIRED'] });
    assert.deepEqual(await permitTransitions(h.db.pool, permit.permit_id), [[null, 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'EXPIRED']]);

    const again = await admitByCode(h.client, { code, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue, wait: true });
    assert.ok(again.result, 'born on a fresh admission');
    const after = await written(h.db.pool, code);
    assert.deepEqual(after.permits.map((p) => p.state), ['EXPIRED', 'FINALIZED']);
    assert.equal(after.rows, 1);
  });

  test('refusals: the reconcile names the permit\'s own workflow and a closed run, the watch and the rebaseline belong to their roles', async () => {
    const code = freshCode();
    const wf = `test-wf:${code}`;
    const permitId = (await h.workerPool.query<{ permit_id: string }>(
      `SELECT permit_id::text FROM fn_permit_issue($1, $2, 'dot_tools', 600, 'test-dot', $3, 'run-a')`, [`refusal:${code}`, code, wf])).rows[0]!.permit_id;
    type Q = { query: (sql: string, params: unknown[]) => Promise<pg.QueryResult> };
    const reconcile = async (q: Q, workflowId: string, status: string, closedAt = new Date()) =>
      (await q.query(`SELECT (fn_permit_reconcile_closed($1, $2, 'run-a', $3, $4, 'test')).state AS state`,
        [permitId, workflowId, status, closedAt])).rows[0] as { state: string };
    const before = await permitTransitions(h.db.pool, permitId);

    await rejectsWith(reconcile(h.workerPool, `test-wf:another`, 'TERMINATED'), 'BG409', /belongs to workflow/);
    await rejectsWith(reconcile(h.workerPool, wf, 'RUNNING'), 'BG400', /not closed/);
    await rejectsWith(reconcile(h.workerPool, wf, 'CONTINUED_AS_NEW'), 'BG400', /not closed/);
    await rejectsWith(reconcile(h.workerPool, wf, 'TERMINATED', new Date(Date.now() - 3_600_000)), 'BG409', /after run run-a closed/);
    await rejectsWith(reconcile(operator, wf, 'TERMINATED'), '42501');
    await rejectsWith(h.workerPool.query(`SELECT fn_drift_accept('worker', 'accept my own change', 'none')`), '42501');
    await rejectsWith(h.workerPool.query(`SELECT fn_drift_watch_record('worker', 'resolved by me')`), '42501');
    await rejectsWith(h.workerPool.query(`UPDATE birth_drift_finding SET resolved_at = now(), resolved_by = 'worker'`), '42501');
    await rejectsWith(h.workerPool.query(`INSERT INTO birth_drift_watch (singleton) VALUES (true)`), '42501');
    await rejectsWith(operator.query(`SELECT fn_drift_watch_tick('operator')`), '42501');
    await rejectsWith(operator.query(`DELETE FROM birth_drift_finding`), '42501');
    await rejectsWith(operator.query(`UPDATE birth_drift_watch SET ticks = 0`), '42501');
    let directus: Session | undefined;
    try {
      directus = await asDirectus(h.db.url);
      await rejectsWith(reconcile(directus.c, wf, 'TERMINATED'), '42501');
      await rejectsWith(directus.c.query(`SELECT fn_drift_watch_tick('directus')`), '42501');
      await rejectsWith(directus.c.query(`SELECT fn_drift_accept('directus', 'mine now', 'none')`), '42501');
      await rejectsWith(directus.c.query(`SELECT * FROM birth_drift_finding`), '42501');
    } finally {
      await directus?.end();
    }
    assert.deepEqual(await permitTransitions(h.db.pool, permitId), before, 'nothing moved');
    assert.equal((await written(h.db.pool, code)).permits[0]!.state, 'RESERVED');

    // The worker's own legitimate call: the permit's workflow, a closed run → CANCELLED, logged; again → unchanged.
    assert.deepEqual(await reconcile(h.workerPool, wf, 'TIMED_OUT'), { state: 'CANCELLED' });
    assert.deepEqual(await reconcile(h.workerPool, wf, 'TIMED_OUT'), { state: 'CANCELLED' });
    assert.deepEqual((await permitTransitions(h.db.pool, permitId)).at(-1), ['RESERVED', 'CANCELLED']);
    assert.equal((await permitTransitions(h.db.pool, permitId)).length, before.length + 1);
  });

  test("the drift watch records a superuser's disabled trigger (first and last seen), the next admission parks on gate_drift, and an owner's `birthgate rebaseline` clears it, logged", async () => {
    assert.equal((await watch()).result.open, 0, 'clean before');
    const trg = await gateTriggers(h.db.pool);
    const guardTrigger = trg.guards[0]!;
    await su.query(alterTriggers('DISABLE', [guardTrigger]));
    try {
      const first = await watch();
      assert.ok(first.result.new >= 1 && first.result.hard >= 1, JSON.stringify(first.result));
      const disabled = async () => (await openFindings()).find((f) => f.drift === 'DISABLED' && f.name?.endsWith(`.${guardTrigger}`));
      const f1 = await disabled();
      assert.ok(f1, 'the disabled trigger is a finding');
      assert.equal(f1.dim, 'gate_drift');
      assert.equal(f1.first_seen.getTime(), f1.last_seen.getTime());
      assert.ok(await guard() > 0, 'the guard the gate reads is set: every insert is refused');

      await watch();
      const f2 = (await disabled())!;
      assert.equal(f2.finding_id, f1.finding_id, 'the same finding, not a new one');
      assert.ok(f2.ticks >= 2 && f2.last_seen > f1.last_seen);
      assert.equal(f2.first_seen.getTime(), f1.first_seen.getTime());

      // The next admission parks on the hard gate_drift blocker: nothing is written but its place.
      const code = freshCode();
      const a = await admitByCode(h.client, { code, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue, wait: true });
      started.push(a.workflowId);
      assert.ok(a.parked, 'parked');
      assert.ok(a.parked.blockers.some((b) => b.kind === 'block_dim' && b.hard && /^gate_drift=/.test(b.detail)), JSON.stringify(a.parked.blockers));
      assert.deepEqual({ rows: (await written(h.db.pool, code)).rows, states: (await written(h.db.pool, code)).permits.map((p) => p.state) }, { rows: 0, states: ['REQUESTED'] });

      // Re-enabled: the DISABLED finding resolves at the next tick; the rewritten trigger set and the DDL stay.
      await su.query(alterTriggers('ENABLE ALWAYS', [guardTrigger]));
      await watch();
      const resolved = (await h.db.pool.query<Finding>('SELECT * FROM birth_drift_finding WHERE finding_id = $1', [f1.finding_id])).rows[0]!;
      assert.equal(resolved.resolved_by, 'no longer seen by drift-watch');
      assert.ok((await openFindings()).some((f) => f.kind === 'trigger_set' && f.drift === 'CHANGED'));

      const drift = await runCli(['drift', '--json'], cliEnv);
      assert.equal(drift.code, 3, drift.stderr);
      const listed = JSON.parse(drift.stdout) as { open: Array<{ kind: string; drift: string; ticks: number }>; watch: { ticks: number } };
      assert.ok(listed.open.some((f) => f.kind === 'trigger_set' && f.drift === 'CHANGED'));
      assert.ok(listed.watch.ticks >= 3);

      const accept = await runCli(['rebaseline', '--owner', 'estate-owner', '--reason', 'guard trigger drill, re-enabled', '--approval', 'CHG-917'], cliEnv);
      assert.equal(accept.code, 0, accept.stdout + accept.stderr);
      assert.match(accept.stdout, /accepted \d+ catalog change\(s\):\n(.*\n)*\s+CHANGED trigger_set public\.dot_tools/);
      const logged = (await h.db.pool.query(`SELECT actor, reason, approval_id, captured_by FROM birth_drift_rebaseline ORDER BY rebaseline_id DESC LIMIT 1`)).rows[0];
      assert.deepEqual(logged, { actor: 'estate-owner', reason: 'guard trigger drill, re-enabled', approval_id: 'CHG-917', captured_by: operatorLogin });
      assert.deepEqual(await openFindings(), []);
      const cleared = (await h.db.pool.query<{ resolved_by: string }>(
        `SELECT resolved_by FROM birth_drift_finding WHERE kind = 'trigger_set' ORDER BY finding_id DESC LIMIT 1`)).rows[0]!;
      assert.match(cleared.resolved_by, new RegExp(`^cleared at rebaseline rebaseline@\\S+ \\(owner estate-owner, approval CHG-917, login ${operatorLogin}\\)$`));
      assert.equal(await guard(), 0);
      const clean = await runCli(['drift'], cliEnv);
      assert.equal(clean.code, 0, clean.stderr);
      assert.match(clean.stdout, /no open findings/);

      // The parked admission, retried, is born.
      await retry(h.client, { code }, { actor: 'ops', reason: 'drift accepted' });
      const born = await h.client.workflow.getHandle(a.workflowId).result();
      assert.equal(born.stage, 'FINALIZED');
      assert.equal((await written(h.db.pool, code)).rows, 1);
    } finally {
      await su.query(alterTriggers('ENABLE ALWAYS', [guardTrigger])).catch(() => undefined);
    }
  });

  test('a one-transaction bypass is recorded and parks the next admission; a rebaseline accepts the DDL, never the row, until it is repaired', async () => {
    const trg = await gateTriggers(h.db.pool);
    const gate = [trg.gate, trg.consume, trg.finalize];
    const bypassed = freshCode();
    await su.query('BEGIN');
    await su.query(alterTriggers('DISABLE', gate));
    const rowId = (await su.query<{ id: string }>(`INSERT INTO dot_tools (code, name, _dot_origin) VALUES ($1, 'superuser bypass', 'test') RETURNING id::text`, [bypassed])).rows[0]!.id;
    await su.query(alterTriggers('ENABLE ALWAYS', gate));
    await su.query('COMMIT');
    let parkedCode: string | undefined;
    try {
      const tick = await watch();
      const dims = (await openFindings()).map((f) => f.finding_key);
      assert.ok(dims.includes('dim:admission_ungated_rows') && dims.includes('dim:admission_unlinked_births'), dims.join(', '));
      assert.ok(dims.some((k) => k.startsWith('gate_drift:')), dims.join(', '));
      const ungated = tick.result.findings.find((f) => f.dim === 'admission_ungated_rows')!;
      assert.match(ungated.detail ?? '', new RegExp(`dot_tools row ${rowId} \\(${bypassed}\\)`));

      parkedCode = freshCode();
      const a = await admitByCode(h.client, { code: parkedCode, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue, wait: true });
      started.push(a.workflowId);
      assert.ok(a.parked?.blockers.some((b) => b.hard && /^admission_ungated_rows=1/.test(b.detail)), JSON.stringify(a.parked?.blockers));

      const accepted = await rebaseline(operator, { owner: 'estate-owner', reason: 'bypass drill: accept the DDL', approvalId: 'CHG-918' });
      assert.equal(accepted.remaining_findings, 2);
      assert.deepEqual(accepted.watch.findings.map((f) => f.dim).sort(), ['admission_ungated_rows', 'admission_unlinked_births']);
      assert.ok(await guard() > 0, 'still fail closed: the row is there');
      await superuserRemoveRows(h.db.pool, [bypassed]);
      const repaired = await rebaseline(operator, { owner: 'estate-owner', reason: 'bypass drill: repaired', approvalId: 'CHG-919' });
      assert.equal(repaired.remaining_findings, 0);
      assert.equal((await watch()).result.open, 0);
      assert.equal(await guard(), 0);
      await retry(h.client, { code: parkedCode }, { actor: 'ops', reason: 'repaired' });
      assert.equal((await h.client.workflow.getHandle(a.workflowId).result()).stage, 'FINALIZED');
    } finally {
      if ((await h.db.pool.query('SELECT 1 FROM dot_tools WHERE code = $1', [bypassed])).rowCount) {
        await superuserRemoveRows(h.db.pool, [bypassed]);
        await rebaseline(operator, { owner: 'test', reason: 'test cleanup', approvalId: 'none' });
      }
    }
  });

  test('the CLI refuses bad usage before touching anything (exit 2)', async () => {
    const sets = (await h.db.pool.query('SELECT count(*)::int AS n FROM birth_drift_rebaseline')).rows[0];
    for (const argv of [['rebaseline', '--reason', 'r'], ['rebaseline', '--owner', 'o', '--reason', 'r', '--approval', 'x'.repeat(201)]]) {
      const r = await runCli(argv, cliEnv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stdout}${r.stderr}`);
    }
    assert.deepEqual((await h.db.pool.query('SELECT count(*)::int AS n FROM birth_drift_rebaseline')).rows[0], sets);
  });
});

describe('packet step 17 (drift watch)', () => {
  test('rolls back to the catalog fingerprint it was applied on; its findings are archived, not dropped', async () => {
    const db = await worldDatabase('step17_rollback');
    try {
      const below = Math.max(...packetSteps().map((s) => s.meta.step).filter((s) => s < 17));
      await applyStepsSql(db.pool, below);
      const entry = await catalogFingerprint(db.pool);
      assert.equal((await verifyStep(db.pool, 17)).ok, false);
      await applyStep(db.pool, 17);
      assert.equal((await verifyStep(db.pool, 17)).ok, true);
      assert.notDeepEqual(await catalogFingerprint(db.pool), entry);
      await db.pool.query(`ALTER TABLE dot_tools DISABLE TRIGGER trg_permit_guard_dot_tools`);
      await db.pool.query(`SELECT fn_drift_watch_tick('test')`);
      await db.pool.query(`ALTER TABLE dot_tools ENABLE ALWAYS TRIGGER trg_permit_guard_dot_tools`);
      await db.pool.query(`SELECT fn_drift_accept('test-owner', 'drill', 'none')`);

      await rollbackStep(db.pool, 17);
      assert.equal((await verifyStep(db.pool, 17)).ok, false);
      assert.deepEqual(await catalogFingerprint(db.pool), entry);
      const archived = (await db.pool.query<{ schema: string }>(
        `SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relname = 'birth_drift_finding' AND n.nspname LIKE 'birthgate\\_archive\\_%'`)).rows;
      assert.equal(archived.length, 1);
      const kept = await db.pool.query(`SELECT count(*)::int AS n FROM ${pg.escapeIdentifier(archived[0]!.schema)}.birth_drift_finding WHERE resolved_by LIKE 'cleared at rebaseline%'`);
      assert.ok(kept.rows[0].n >= 1, 'the findings are history');
      // The in-database watch sees no drift after the rollback (its down captured a baseline set).
      assert.deepEqual((await db.pool.query('SELECT kind, name, drift FROM fn_drift_check()')).rows, []);
      // Without the step a drift tick fails at once, saying why, instead of retrying every minute.
      await assert.rejects(scheduleActivities(db.pool).recordDriftWatch({ actor: 'test' }), (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure && err.nonRetryable, String(err));
        assert.equal(err.type, 'PRECONDITION_FAILED');
        assert.match(err.message, /not applied through step 17/);
        return true;
      });
      // And it applies again.
      await applyStep(db.pool, 17);
      assert.equal((await verifyStep(db.pool, 17)).ok, true);
    } finally {
      await db.dispose();
    }
  });
});
