// Metrics and logs (issue 10 item 3): `birthgate worker --metrics-port N` as a real child process on the
// harness's PostgreSQL and Temporal dev server, scraped over HTTP before and after what it does — a clean
// admission, a park resolved by break-glass, a park cancelled, an insert that fails and is retried, a
// drift-watch tick a Schedule starts — and its stderr read back as JSON lines. Each counter is checked
// to have moved by what happened; each ledger gauge against the database it claims to show.
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type pg from 'pg';
import { admitByCode, breakGlass, cancel, status } from '../client/admissions.ts';
import { applySchedules, deleteSchedules, DRIFT_WATCH, scheduleId } from '../client/schedules.ts';
import { projectRoot } from '../config/index.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import { createPool } from '../db/pool.ts';
import { METRIC } from '../observability/metrics.ts';
import { freePort } from '../stack/ports.ts';
import { admissionHarness, type AdmissionHarness, freshCode, holdInserts, untilStage, written } from './support/admission-harness.ts';
import { WORKER_PASSWORD } from './support/admission-world.ts';
import { alterTriggers, gateTriggers } from './support/attacker.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';
import { installOperatorLogin, operatorUrl } from './support/packet-world.ts';
import { eventually } from './support/temporal.ts';

/** Fails the dot_tools family code rule (step 13): the admission parks as a stuck birth. */
const ruleBreakingCode = () => `Tool_${randomInt(1e8, 1e9)}`;
const operator = { actor: 'ops@metrics.test', reason: 'OPS-10 metrics drill' };

// ───────────────────────────── Prometheus text, read back ─────────────────────────────

type Sample = { name: string; labels: Record<string, string>; value: number };

function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum over every series of `name` whose labels include `labels` (the SDK adds namespace, taskQueue …). */
function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const has = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

// ───────────────────────────── the worker child ─────────────────────────────

type WorkerChild = {
  child: ChildProcessWithoutNullStreams;
  stderr(): string;
  waitFor(re: RegExp, what: string, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
};

function startWorkerCli(args: string[], env: NodeJS.ProcessEnv): WorkerChild {
  const child = spawn(process.execPath, [path.join(projectRoot, 'bin', 'birthgate.mjs'), 'worker', ...args], { cwd: projectRoot, env, stdio: 'pipe' });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    child,
    stderr: () => err,
    exited,
    waitFor: (re, what, timeoutMs = 120_000) =>
      eventually(async () => {
        if (re.test(err)) return true;
        if (gone) throw new Error(`the worker exited before ${what}:\n${err}`);
        return undefined;
      }, what, timeoutMs).then(() => undefined),
  };
}

type LogLine = { time: string; level: string; msg: string; component: string } & Record<string, unknown>;

/** Every line the worker wrote to stderr, each parsed as one JSON object (a line that is not fails the test). */
function logLines(w: WorkerChild): LogLine[] {
  return w.stderr().split('\n').filter((l) => l.trim() !== '').map((l) => {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      assert.fail(`a worker log line is not JSON: ${l}`);
    }
    assert.ok(v && typeof v === 'object' && !Array.isArray(v), `a log line is one JSON object: ${l}`);
    const line = v as LogLine;
    assert.ok(typeof line.time === 'string' && typeof line.level === 'string' && typeof line.msg === 'string', l);
    return line;
  });
}

describe('metrics and logs of `birthgate worker`', () => {
  let h: AdmissionHarness;
  let operatorDb: pg.Pool;
  let w: WorkerChild;
  let metricsUrl: string;
  let home: string;
  let workerEnv: NodeJS.ProcessEnv;
  const children: WorkerChild[] = [];
  const started: string[] = [];

  /** `birthgate worker --metrics-port <free port>`; resolves once it serves its metrics. */
  const startWorker = async () => {
    const port = await freePort();
    w = startWorkerCli(['--metrics-port', String(port)], workerEnv);
    children.push(w);
    metricsUrl = `http://127.0.0.1:${port}/metrics`;
    await w.waitFor(/metrics on http/, 'the worker to serve its metrics');
  };

  const scrape = async (): Promise<Sample[]> => {
    const res = await fetch(metricsUrl);
    assert.equal(res.status, 200);
    return parseExposition(await res.text());
  };
  /** Scrape until `ok` holds (the ledger gauges refresh every second here; counters land at once). */
  const scrapeUntil = (what: string, ok: (s: Sample[]) => boolean) =>
    eventually(async () => {
      const s = await scrape();
      return ok(s) ? s : undefined;
    }, what, 20_000);
  const outcome = (s: Sample[], o: string) => valueOf(s, METRIC.admissionOutcomes, { outcome: o, collection: 'dot_tools' });
  const permitsInDb = async (state: string, breakGlassOnly = false) =>
    (await h.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM birth_admission_permit WHERE collection_name = 'dot_tools' AND state = $1 AND (break_glass OR NOT $2)`,
      [state, breakGlassOnly])).rows[0]!.n;

  before(async () => {
    home = fs.mkdtempSync(path.join(process.env.BIRTHGATE_TEST_SCRATCH ?? os.tmpdir(), 'metrics-'));
    const t = testEnv();
    // The bundle built once beside the world (both worker starts below then skip webpack).
    const build = runCli(['worker', 'build'], { PATH: process.env.PATH, HOME: process.env.HOME, BIRTHGATE_HOME: home });
    h = await admissionHarness('metrics', { worker: false });
    await installOperatorLogin(h.db.pool);
    operatorDb = createPool(operatorUrl(h.db.url), { max: 2, applicationName: 'test-operator' });
    operatorDb.on('error', () => undefined); // DROP DATABASE … WITH (FORCE) at teardown
    const built = await build;
    assert.equal(built.code, 0, built.stderr);
    // What `birthgate stack up` leaves behind: the worker derives birthgate_worker's URL from it.
    fs.writeFileSync(path.join(home, 'stack.json'), JSON.stringify({
      supervisorPid: process.pid, startedAt: new Date().toISOString(), ready: true, databaseUrl: h.db.url, temporalAddress: t.temporalAddress, namespace: t.namespace,
    }));
    workerEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      BIRTHGATE_HOME: home,
      BIRTHGATE_WORKER_PASSWORD: WORKER_PASSWORD,
      BIRTHGATE_TASK_QUEUE: h.taskQueue,
      TEMPORAL_NAMESPACE: t.namespace,
      BIRTHGATE_METRICS_INTERVAL: '1', // the ledger gauges every second, so the test waits little
    };
    await startWorker();
  });

  after(async () => {
    if (h) await deleteSchedules(h.client, { taskQueue: h.taskQueue, schedules: [DRIFT_WATCH] }).catch(() => undefined);
    for (const id of started) await h?.client.workflow.getHandle(id).terminate('test teardown').catch(() => undefined);
    for (const c of children.filter((x) => x.child.exitCode === null && x.child.signalCode === null)) {
      c.child.kill('SIGTERM');
      const code = await Promise.race([c.exited, new Promise<'late'>((r) => setTimeout(r, 30_000, 'late'))]);
      if (code === 'late') c.child.kill('SIGKILL');
    }
    await operatorDb?.end();
    await h?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  test('the worker says where its metrics are, in JSON lines, and serves the SDK\'s own metrics there', async () => {
    const lines = logLines(w);
    const announced = lines.find((l) => /^birthgate worker: metrics on /.test(l.msg));
    assert.ok(announced, 'the metrics line');
    assert.ok(announced.msg.includes(metricsUrl), announced.msg);
    assert.equal(announced.component, 'birthgate-worker');
    assert.ok(lines.some((l) => l.msg.startsWith(`birthgate worker: task queue ${h.taskQueue} on `)));
    // The Temporal runtime's telemetry on the same endpoint: the worker's pollers and task slots.
    const s = await scrapeUntil('the SDK\'s pollers', (x) => has(x, 'temporal_num_pollers', { task_queue: h.taskQueue }));
    assert.ok(valueOf(s, 'temporal_num_pollers', { task_queue: h.taskQueue, poller_type: 'activity_task' }) > 0);
  });

  test('a metrics port already taken fails the start (exit 1) and says which', async () => {
    const port = Number(new URL(metricsUrl).port); // the running worker holds it
    const taken = await runCli(['worker', '--metrics-port', String(port)], workerEnv, 60_000);
    assert.equal(taken.code, 1, taken.stderr);
    assert.match(taken.stderr, new RegExp(`cannot serve metrics on 127\\.0\\.0\\.1:${port}: .*Address already in use`));
  });

  test('a clean admission counts FINALIZED; the permit gauge is the ledger\'s count; its log lines carry workflow id, code and permit id', async () => {
    const before = await scrape();
    const code = freshCode();
    const a = await admitByCode(h.client, { code, fields: { name: code }, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue });
    started.push(a.workflowId);
    const result = await h.client.workflow.getHandle(a.workflowId).result();
    const db = await written(h.db.pool, code);
    assert.equal(db.rows, 1);
    assert.deepEqual(db.permits.map((p) => [p.permit_id, p.state]), [[result.permitId, 'FINALIZED']]);

    const finalized = await permitsInDb('FINALIZED');
    const after = await scrapeUntil('FINALIZED counted and the gauge refreshed', (s) =>
      outcome(s, 'FINALIZED') === outcome(before, 'FINALIZED') + 1 && valueOf(s, METRIC.permits, { collection: 'dot_tools', state: 'FINALIZED' }) === finalized);
    assert.equal(outcome(after, 'BLOCKED'), outcome(before, 'BLOCKED'), 'a clean admission never parks');

    const mine = await eventually(async () => {
      const l = logLines(w).find((x) => x.msg === 'admission FINALIZED' && x.code === code);
      return l;
    }, 'the FINALIZED log line');
    assert.equal(mine.workflowId, admissionWorkflowId('dot_tools', code));
    assert.equal(mine.permitId, result.permitId);
    assert.equal(mine.collection, 'dot_tools');
    assert.equal(mine.component, 'workflow');
    assert.equal(mine.birthId, result.birthId);
    // At the default level (INFO) a clean admission writes its outcome only: the progress stages
    // (PREFLIGHT, PERMIT_ISSUED, INSERTING, FINALIZING) are DEBUG lines, left out.
    const stages = logLines(w).filter((x) => x.workflowId === a.workflowId).map((x) => [x.level, x.msg, x.permitId ?? null]);
    assert.deepEqual(stages, [['INFO', 'admission FINALIZED', result.permitId]]);
  });

  test('a park counts BLOCKED and shows as a stuck birth under an hour old; break-glass counts a use and FINALIZED; a cancelled park counts CANCELLED', async () => {
    const before = await scrape();
    const parked = ruleBreakingCode();
    const a = await admitByCode(h.client, { code: parked, fields: { name: parked }, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue });
    started.push(a.workflowId);
    const state = await untilStage(h.client, parked, 'BLOCKED');
    const db = await written(h.db.pool, parked);
    assert.deepEqual(db.permits.map((p) => [p.permit_id, p.state]), [[state.permit!.permitId, 'REQUESTED']], 'the stuck birth holds its place');
    const requested = await permitsInDb('REQUESTED');
    assert.equal(requested, 1);

    // During the park: counted once, and the ledger gauges show one stuck birth, just parked.
    const during = await scrapeUntil('BLOCKED counted, the stuck birth in the gauges', (s) =>
      outcome(s, 'BLOCKED') === outcome(before, 'BLOCKED') + 1 && valueOf(s, METRIC.stuckBirths, { age: 'under_1h' }) === requested);
    assert.equal(valueOf(during, METRIC.stuckBirths, { age: 'over_7d' }), 0);
    assert.equal(valueOf(during, METRIC.permits, { collection: 'dot_tools', state: 'REQUESTED' }), requested);
    assert.ok(valueOf(during, METRIC.stuckBirthOldest) < 3_600);
    const parkLine = await eventually(async () => logLines(w).find((l) => l.msg === 'admission BLOCKED' && l.code === parked), 'the park logged');
    assert.equal(parkLine.level, 'INFO');
    assert.equal(parkLine.permitId, state.permit!.permitId);
    assert.deepEqual(parkLine.blockers, state.blockers.map((b) => b.kind));

    // An operator breaks the glass: the admission finalizes under it.
    await breakGlass(h.client, operatorDb, { code: parked }, { ...operator, approvalId: 'APPR-METRICS-1' });
    const result = await h.client.workflow.getHandle(a.workflowId).result();
    assert.equal(result.breakGlass, true);
    const bgFinalized = await permitsInDb('FINALIZED', true);
    assert.equal(bgFinalized, 1);
    const afterGlass = await scrapeUntil('the break-glass counted and the gauges back to no stuck birth', (s) =>
      valueOf(s, METRIC.breakGlassUses, { collection: 'dot_tools' }) === valueOf(before, METRIC.breakGlassUses, { collection: 'dot_tools' }) + 1 &&
      outcome(s, 'FINALIZED') === outcome(during, 'FINALIZED') + 1 &&
      valueOf(s, METRIC.stuckBirths, { age: 'under_1h' }) === 0 &&
      valueOf(s, METRIC.breakGlassPermits, { collection: 'dot_tools', state: 'FINALIZED' }) === bgFinalized);
    assert.equal(valueOf(afterGlass, METRIC.stuckBirthOldest), 0);
    assert.equal(outcome(afterGlass, 'BLOCKED'), outcome(during, 'BLOCKED'), 'the same park is not counted again');

    // Another park, cancelled by an operator.
    const dropped = ruleBreakingCode();
    const b = await admitByCode(h.client, { code: dropped, fields: { name: dropped }, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue });
    started.push(b.workflowId);
    await untilStage(h.client, dropped, 'BLOCKED');
    await cancel(h.client, { code: dropped }, operator);
    const err = await h.client.workflow.getHandle(b.workflowId).result().then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.deepEqual((await written(h.db.pool, dropped)).permits.map((p) => p.state), ['CANCELLED']);
    const cancelled = await permitsInDb('CANCELLED');
    await scrapeUntil('CANCELLED counted, the cancelled permit in the gauge', (s) =>
      outcome(s, 'CANCELLED') === outcome(afterGlass, 'CANCELLED') + 1 && outcome(s, 'BLOCKED') === outcome(afterGlass, 'BLOCKED') + 1 &&
      valueOf(s, METRIC.permits, { collection: 'dot_tools', state: 'CANCELLED' }) === cancelled);
  });

  test('an activity that fails is logged as one JSON line with its workflow id, code and permit id', async () => {
    // Governed inserts wait on this lock until the worker's lock_timeout (3 s) fails the attempt.
    const held = await holdInserts(h.db.url);
    const code = freshCode();
    let workflowId: string;
    try {
      ({ workflowId } = await admitByCode(h.client, { code, fields: { name: code }, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue }));
      started.push(workflowId);
      await eventually(async () => logLines(w).find((l) => l.msg === 'Activity failed' && l.code === code), 'the failed insert attempt logged', 30_000);
    } finally {
      await held.release();
    }
    const result = await h.client.workflow.getHandle(workflowId).result();
    const failed = logLines(w).find((l) => l.msg === 'Activity failed' && l.code === code)!;
    assert.equal(failed.level, 'WARN');
    assert.equal(failed.activityType, 'insertGovernedRow');
    assert.equal(failed.workflowId, workflowId);
    assert.equal(failed.permitId, result.permitId);
    assert.equal(failed.collection, 'dot_tools');
    assert.equal((failed.error as { message?: string } | undefined)?.message !== undefined, true, 'the error is an object with its message');
  });

  test('a drift-watch tick a Schedule starts sets the drift gauges from its answer (the database\'s open findings) and records the Schedule\'s lag', async () => {
    const before = await scrape();
    const lagSeries = { schedule: scheduleId(h.taskQueue, DRIFT_WATCH.name) };
    // A superuser disables a row guard: the drift watch finds it (hard). Admissions park from here on.
    await h.db.pool.query(alterTriggers('DISABLE', (await gateTriggers(h.db.pool)).guards.slice(0, 1)));
    await applySchedules(h.client, { taskQueue: h.taskQueue, schedules: [DRIFT_WATCH] });
    await h.client.schedule.getHandle(lagSeries.schedule).trigger();

    const after = await scrapeUntil('a drift-watch tick measured', (s) =>
      valueOf(s, `${METRIC.scheduleLag}_count`, lagSeries) >= valueOf(before, `${METRIC.scheduleLag}_count`, lagSeries) + 1 && has(s, METRIC.driftFindingsOpen));
    const findings = async () => (await h.db.pool.query<{ open: number; hard: number; total: number; resolved: number }>(
      `SELECT count(*) FILTER (WHERE resolved_at IS NULL)::int AS open, count(*) FILTER (WHERE resolved_at IS NULL AND hard)::int AS hard,
              count(*)::int AS total, count(*) FILTER (WHERE resolved_at IS NOT NULL)::int AS resolved
         FROM birth_drift_finding`)).rows[0]!;
    const f = await findings();
    assert.ok(f.hard >= 1, `the disabled guard is a hard finding: ${JSON.stringify(f)}`);
    // Every tick of this estate ran on this worker (its own task queue), so its counters are the table's.
    const settled = await scrapeUntil('the drift gauges equal the open findings', (s) =>
      valueOf(s, METRIC.driftFindingsOpen, { severity: 'hard' }) === f.hard &&
      valueOf(s, METRIC.driftFindingsOpen, { severity: 'soft' }) === f.open - f.hard &&
      valueOf(s, METRIC.driftFindingsNew) === f.total && valueOf(s, METRIC.driftFindingsResolved) === f.resolved);
    const tickAt = valueOf(settled, METRIC.driftWatchLastTick);
    assert.ok(Math.abs(tickAt - Date.now() / 1000) < 120, `the last tick is recent: ${tickAt}`);
    const lagSum = valueOf(after, `${METRIC.scheduleLag}_sum`, lagSeries);
    assert.ok(lagSum >= 0 && lagSum < 60_000 * valueOf(after, `${METRIC.scheduleLag}_count`, lagSeries), `lag ${lagSum} ms`);
  });

  test('a worker that replays a parked admission neither counts nor logs its park again (the SDK drops workflow metrics and logs on replay)', async () => {
    const code = ruleBreakingCode();
    const before = await scrape();
    const a = await admitByCode(h.client, { code, fields: { name: code }, requestedBy: 'test-dot' }, { taskQueue: h.taskQueue });
    started.push(a.workflowId);
    await untilStage(h.client, code, 'BLOCKED');
    await scrapeUntil('the park counted once', (s) => outcome(s, 'BLOCKED') === outcome(before, 'BLOCKED') + 1);

    // The worker drains and stops; a fresh process (empty cache, counters from zero) takes over and
    // replays the parked admission's history to answer a query, then to act on the operator's cancel.
    const first = w;
    first.child.kill('SIGTERM');
    assert.equal(await first.exited, 0, first.stderr());
    await startWorker();
    assert.notEqual(w, first);
    const s = await status(h.client, { code }, { queryTimeoutMs: 10_000 });
    assert.equal(s.state?.stage, 'BLOCKED', 'the new worker answered from the replayed history');
    await cancel(h.client, { code }, operator);
    await h.client.workflow.getHandle(a.workflowId).result().then(() => assert.fail('cancelled'), () => undefined);
    assert.deepEqual((await written(h.db.pool, code)).permits.map((p) => p.state), ['CANCELLED']);

    const replayed = await scrapeUntil('the cancel counted by the new worker', (x) => outcome(x, 'CANCELLED') === 1);
    assert.equal(outcome(replayed, 'BLOCKED'), 0, 'the replayed park is not counted again');
    // (Log lines reach stderr up to ~100 ms late: the runtime orders them with Core's forwarded lines.)
    const mine = await eventually(async () => {
      const msgs = logLines(w).filter((l) => l.code === code && l.component === 'workflow').map((l) => l.msg);
      return msgs.includes('admission CANCELLED') ? msgs : undefined;
    }, 'the CANCELLED line');
    assert.deepEqual(mine, ['admission COMPENSATING', 'admission CANCELLED'], 'only what the new worker ran live is logged');
  });
});
