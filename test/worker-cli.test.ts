// `birthgate worker build` and `birthgate worker` as a user runs them (issue 8, items 2 and 5): a
// real child process on the harness's PostgreSQL and Temporal dev server, configured like the
// embedded stack (a stack state file, BIRTHGATE_WORKER_PASSWORD; no worker URL set by hand).
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import proto from '@temporalio/proto';
import type pg from 'pg';
import { admitByCode } from '../client/admissions.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { projectRoot } from '../config/index.ts';
import { BENCHMARK_ONLY_WORKFLOWS, type BundleManifest } from '../workers/bundle.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { WORKER_PASSWORD } from './support/admission-world.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { eventually } from './support/temporal.ts';

const { TaskQueueType } = proto.temporal.api.enums.v1;
const packageVersion = (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

type WorkerChild = {
  child: ChildProcessWithoutNullStreams;
  output(): string;
  waitFor(re: RegExp, what: string, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/** `birthgate worker …` as a child process, its stdout and stderr collected together. */
function startWorkerCli(args: string[], env: NodeJS.ProcessEnv): WorkerChild {
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'birthgate.mjs'), 'worker', ...args], { cwd: projectRoot, env, stdio: 'pipe' });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    child,
    output: () => out,
    exited,
    waitFor: (re, what, timeoutMs = 120_000) =>
      eventually(
        async () => {
          if (re.test(out)) return true;
          if (gone) throw new Error(`the worker exited before ${what}:\n${out}`);
          return undefined;
        },
        what,
        timeoutMs,
      ).then(() => undefined),
  };
}

/** Resolves with the exit, or fails after `ms`. */
async function exitWithin(w: WorkerChild, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the worker did not exit within ${ms} ms:\n${w.output()}`)), ms)));
  try {
    return await Promise.race([w.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Hold ACCESS EXCLUSIVE on dot_tools in an open transaction: every admission activity touching it waits. */
async function lockDotTools(pool: pg.Pool): Promise<{ release(): Promise<void> }> {
  const c = await pool.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE dot_tools IN ACCESS EXCLUSIVE MODE');
  return {
    async release() {
      await c.query('ROLLBACK').catch(() => undefined);
      c.release();
    },
  };
}

/** The worker child's backends waiting on a lock (the admission's activity blocked by lockDotTools). */
async function waitingWorkerBackends(pool: pg.Pool): Promise<number> {
  const r = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = 'birthgate-worker' AND wait_event_type = 'Lock'`,
  );
  return r.rows[0]!.n;
}

describe('birthgate worker', () => {
  let h: AdmissionHarness;
  let env: NodeJS.ProcessEnv;
  let home: string;
  let built: BundleManifest & { codePath: string; manifestPath: string };
  const children: WorkerChild[] = [];
  const started: string[] = [];

  before(async () => {
    h = await admissionHarness('workercli', { worker: false });
    // The drain tests keep an activity in flight by holding a lock it waits for; the role's own bounds
    // (sql/roles/birthgate_worker.sql: lock_timeout 3 s, statement_timeout 8 s) would end that wait on
    // their schedule, not the test's. Only in this scratch database, and before the worker connects.
    const db = (await h.db.pool.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
    for (const setting of ['lock_timeout', 'statement_timeout']) {
      await h.db.pool.query(`ALTER ROLE birthgate_worker IN DATABASE "${db}" SET ${setting} = '60s'`);
    }
    home = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'worker-cli-'));
    const t = testEnv();
    // What `birthgate stack up` leaves behind: the worker finds PostgreSQL and Temporal here and derives
    // birthgate_worker's URL from the superuser URL and BIRTHGATE_WORKER_PASSWORD.
    fs.writeFileSync(
      path.join(home, 'stack.json'),
      JSON.stringify({ supervisorPid: process.pid, startedAt: new Date().toISOString(), ready: true, databaseUrl: h.db.url, temporalAddress: t.temporalAddress, namespace: t.namespace }),
    );
    env = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      BIRTHGATE_HOME: home,
      BIRTHGATE_WORKER_PASSWORD: WORKER_PASSWORD,
      BIRTHGATE_TASK_QUEUE: h.taskQueue,
      TEMPORAL_NAMESPACE: t.namespace,
    };
  });

  after(async () => {
    for (const w of children) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    for (const id of started) await h?.client.workflow.getHandle(id).terminate('test teardown').catch(() => undefined);
    await h?.stop();
  });

  test('the production entry point exports every workflow except the benchmark-only ones', async () => {
    const all = Object.keys(await import('../workflows/index.ts')).sort();
    const production = Object.keys(await import('../workers/production-workflows.ts')).sort();
    assert.ok(all.includes('dotBirthAdmitLocal'), 'the benchmark variant still exists for bench/');
    assert.deepEqual(production, all.filter((w) => !(BENCHMARK_ONLY_WORKFLOWS as readonly string[]).includes(w)));
    assert.ok(!production.includes('dotBirthAdmitLocal'));
  });

  test('worker build writes the production bundle under BIRTHGATE_HOME with a build id from the version and git commit', async () => {
    const r = await runCli(['worker', 'build', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    built = JSON.parse(r.stdout) as typeof built;
    const version = packageVersion.replaceAll('.', '\\.');
    if (spawnSync('git', ['rev-parse', 'HEAD'], { cwd: projectRoot }).status === 0) {
      assert.match(built.buildId, new RegExp(`^${version}\\+[0-9a-f]{7,}(-dirty)?$`));
      assert.equal(built.buildIdSource, 'git');
    } else {
      assert.match(built.buildId, new RegExp(`^${version}\\+bundle\\.[0-9a-f]{12}$`));
      assert.equal(built.buildIdSource, 'bundle-hash');
    }
    assert.equal(built.codePath, path.join(home, 'worker', 'workflow-bundle.js'));
    const code = fs.readFileSync(built.codePath);
    assert.equal(createHash('sha256').update(code).digest('hex'), built.bundleSha256);
    assert.deepEqual(built.workflows, Object.keys(await import('../workers/production-workflows.ts')).sort()); // every production export, the Schedules' ticks included
    assert.ok(built.sources['workflows/dot-birth-admit.ts'] && built.sources['workers/production-workflows.ts'], 'the manifest lists the sources');
    const text = await runCli(['worker', 'build'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^build id ${built.buildId.replaceAll('.', '\\.').replaceAll('+', '\\+')}$`, 'm'));
  });

  test('worker: derived URL, prebuilt bundle, polls with its build id, admits; dotBirthAdmitLocal is not registered; SIGTERM drains an in-flight activity and exits 0', async () => {
    assert.ok(built, 'needs the bundle of the previous test');
    const w = startWorkerCli([], env);
    children.push(w);
    await w.waitFor(/task queue \S+ on /, 'the worker to start');
    const out = w.output();
    assert.match(out, new RegExp(`build id ${built.buildId.replaceAll('.', '\\.').replaceAll('+', '\\+')} \\(prebuilt bundle ${built.codePath.replaceAll('.', '\\.')}\\)`));
    assert.match(out, /identity birthgate-worker:\d+@/);
    assert.match(out, new RegExp(`task queue ${h.taskQueue} on `));
    assert.match(out, /PostgreSQL as birthgate_worker postgres(ql)?:\/\/birthgate_worker:\*\*\*@/);
    assert.doesNotMatch(out, new RegExp(WORKER_PASSWORD), 'the password is not logged');

    // It polls the task queue, reporting the build id (Worker Versioning off: the queue stays unversioned).
    const { namespace } = testEnv();
    const poller = await eventually(async () => {
      const d = await h.client.workflowService.describeTaskQueue({
        namespace,
        taskQueue: { name: h.taskQueue },
        taskQueueType: TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
      });
      return d.pollers?.find((p) => p.identity?.startsWith('birthgate-worker:'));
    }, 'the worker to poll its task queue');
    assert.equal(poller.workerVersionCapabilities?.buildId, built.buildId);
    assert.equal(poller.deploymentOptions?.workerVersioningMode, proto.temporal.api.enums.v1.WorkerVersioningMode.WORKER_VERSIONING_MODE_UNVERSIONED);

    // One admission through it, its workflow tasks stamped with the build id.
    const code = freshCode();
    const admitted = await admitByCode(h.client, { code, fields: { name: code } }, { taskQueue: h.taskQueue });
    started.push(admitted.workflowId);
    const result = await h.client.workflow.getHandle(admitted.workflowId).result();
    assert.equal(result.stage, 'FINALIZED');
    assert.equal((await written(h.db.pool, code)).rows, 1);
    const history = await h.client.workflow.getHandle(admitted.workflowId).fetchHistory();
    // Its connections are birthgate_worker's (seen right after the admission used them).
    const roles = await eventually(async () => {
      const r = await h.db.pool.query<{ usename: string }>(
        `SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'birthgate-worker'`,
      );
      return r.rows.length ? r.rows.map((x) => x.usename) : undefined;
    }, 'the worker\'s database sessions');
    assert.deepEqual(roles, ['birthgate_worker']);
    const stamps = new Set((history.events ?? []).flatMap((e) => (e.workflowTaskCompletedEventAttributes ? [e.workflowTaskCompletedEventAttributes.workerVersion?.buildId] : [])));
    assert.deepEqual([...stamps], [built.buildId]);

    // The benchmark-only variant is not in this worker: its first workflow task fails, nothing runs.
    const localCode = freshCode();
    const localId = admissionWorkflowId('dot_tools', localCode);
    const local = await h.client.workflow.start('dotBirthAdmitLocal', { workflowId: localId, taskQueue: h.taskQueue, args: [{ code: localCode, fields: { name: localCode } }] });
    started.push(localId);
    const failure = await eventually(async () => {
      const events = (await local.fetchHistory()).events ?? [];
      return events.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure?.message ?? undefined;
    }, 'dotBirthAdmitLocal to fail its workflow task');
    assert.match(failure, /dotBirthAdmitLocal/);
    await local.terminate('not registered on the production worker: expected');
    assert.equal((await written(h.db.pool, localCode)).permits.length, 0);

    // SIGTERM while an activity is in flight (blocked on a lock): the worker waits for it, then exits 0.
    const lock = await lockDotTools(h.db.pool);
    let released = false;
    try {
      const drainCode = freshCode();
      const draining = await admitByCode(h.client, { code: drainCode, fields: { name: drainCode } }, { taskQueue: h.taskQueue });
      started.push(draining.workflowId);
      await eventually(async () => ((await waitingWorkerBackends(h.db.pool)) > 0 ? true : undefined), 'an activity to wait on the lock');
      const pending = (await h.client.workflow.getHandle(draining.workflowId).describe()).raw.pendingActivities?.map((a) => a.activityType?.name) ?? [];
      assert.equal(pending.length, 1, `one activity in flight: ${pending.join(', ')}`);
      w.child.kill('SIGTERM');
      await w.waitFor(/SIGTERM — no new tasks; draining 1 in-flight activity/, 'the drain to begin', 10_000);
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(w.child.exitCode, null, `still draining while the activity runs:\n${w.output()}`);
      await lock.release();
      released = true;
      const exit = await exitWithin(w, 15_000);
      assert.deepEqual(exit, { code: 0, signal: null }, w.output());
      assert.match(w.output(), /drained in [\d.]+ s; stopped/);

      // The in-flight activity completed and was reported: the drain kept it, nothing was abandoned.
      const events = (await h.client.workflow.getHandle(draining.workflowId).fetchHistory()).events ?? [];
      const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === pending[0]);
      assert.ok(scheduled, `${pending[0]} was scheduled`);
      assert.ok(
        events.some((e) => e.activityTaskCompletedEventAttributes && String(e.activityTaskCompletedEventAttributes.scheduledEventId) === String(scheduled.eventId)),
        `${pending[0]} completed before the worker exited`,
      );
      // And the admission finishes on the next worker.
      await h.startWorker();
      assert.equal((await h.client.workflow.getHandle(draining.workflowId).result()).stage, 'FINALIZED');
    } finally {
      if (!released) await lock.release();
      await h.worker?.stop();
      h.worker = undefined;
    }
  });

  test('worker: a stale prebuilt bundle is rebuilt (and said so); a drain that outlasts --drain-timeout exits 1', async () => {
    assert.ok(built, 'needs the bundle of the first test');
    const manifestPath = path.join(home, 'worker', 'workflow-bundle.json');
    const stale = { ...(JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as BundleManifest), buildId: `${packageVersion}+0000000` };
    fs.writeFileSync(manifestPath, JSON.stringify(stale));

    const w = startWorkerCli(['--drain-timeout', '1s'], env);
    children.push(w);
    await w.waitFor(/task queue \S+ on /, 'the worker to start');
    assert.match(w.output(), /no usable prebuilt bundle \(it is build \S+\+0000000, the code is now \S+\); built the workflow bundle now/);
    assert.match(w.output(), new RegExp(`build id ${built.buildId.replaceAll('.', '\\.').replaceAll('+', '\\+')} \\(bundle built at start\\)`));
    assert.match(w.output(), /drain timeout 1 s/);

    const lock = await lockDotTools(h.db.pool);
    try {
      const code = freshCode();
      const admitted = await admitByCode(h.client, { code, fields: { name: code } }, { taskQueue: h.taskQueue });
      started.push(admitted.workflowId);
      await eventually(async () => ((await waitingWorkerBackends(h.db.pool)) > 0 ? true : undefined), 'an activity to wait on the lock');
      w.child.kill('SIGTERM');
      const exit = await exitWithin(w, 30_000);
      assert.equal(exit.code, 1, w.output());
      assert.match(w.output(), /draining 1 in-flight activity \(up to 1 s;/);
      assert.match(w.output(), /stopped; the drain timed out/);
      assert.doesNotMatch(w.output(), /drained in/);
    } finally {
      await lock.release();
    }
  });

  test('bad --drain-timeout is a usage error (exit 2)', async () => {
    const r = await runCli(['worker', '--drain-timeout', 'soon'], env);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--drain-timeout: expected a duration/);
  });
});
