// A real worker process killed with SIGKILL inside an activity (issue 4 "Crash", issue 8 item 7), at
// every point where the database is ahead of the workflow: during preflight; right after the permit is
// issued; right after the insert commits, plain and under an operator's break-glass entry; right after
// the finalize is confirmed; and in the compensations, right after the permit's withdrawal and right
// after the birth's retirement committed. At the kill the database shows the side effect and the
// admission is still running; a new worker finishes it, and the database shows each effect exactly
// once: one row and one birth (or none), the permit in its designed end state, one break-glass entry,
// no transition logged twice. Outcomes only: whether a step runs as a local or a remote activity is
// not assumed (a kill inside either is retried; only the history's event types differ).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import type pg from 'pg';
import type { CrashPoint } from '../activities/hooks.ts';
import { admitByCode, breakGlass, cancel } from '../client/admissions.ts';
import { projectRoot } from '../config/index.ts';
import { createPool } from '../db/pool.ts';
import { bundleFiles, writeProductionBundle } from '../workers/bundle.ts';
import { rollbackUpdate } from '../workflows/messages.ts';
import {
  admissionHarness, type AdmissionHarness, birthTransitions, freshCode, holdInserts, permitTransitions, untilStage, written,
} from './support/admission-harness.ts';
import { testEnv } from './support/env.ts';
import { installOperatorLogin, operatorUrl } from './support/packet-world.ts';
import { type RunningWorker, startAdmissionWorker, uniqueTaskQueue } from './support/temporal.ts';

/** Fails the dot_tools family rule (step 13): the admission parks as a stuck birth. */
const ruleBreakingCode = () => `Tool_${randomInt(1e8, 1e9)}`;
const operator = { actor: 'ops@crash.test', reason: 'OPS-91 crash drill' };
const CLEAN: [string | null, string][] = [[null, 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'CONSUMED'], ['CONSUMED', 'FINALIZED']];
/** From spawn to the kill: the child's start-up, then the steps up to the point (seconds, more on a loaded machine). */
const KILL_WITHIN_MS = 120_000;

type Victim = { child: ChildProcess; exited: Promise<{ signal: string | null; output: string }> };

/**
 * workers/main.ts as a child process on `taskQueue` that SIGKILLs itself at `crashAt`. Its BIRTHGATE_HOME
 * holds the production bundle built once for the file (`home`), so the children do not each run webpack;
 * the worker that recovers runs the same bundle.
 */
function crashingWorker(h: AdmissionHarness, home: string, crashAt: CrashPoint, taskQueue: string): Victim {
  const env = testEnv();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'main.ts')], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      BIRTHGATE_HOME: home,
      BIRTHGATE_TEST_CRASH_AT: crashAt,
      BIRTHGATE_WORKER_DATABASE_URL: h.workerUrl,
      TEMPORAL_ADDRESS: env.temporalAddress,
      TEMPORAL_NAMESPACE: env.namespace,
      BIRTHGATE_TASK_QUEUE: taskQueue,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  return { child, exited: new Promise((resolve) => child.once('exit', (_code, signal) => resolve({ signal, output }))) };
}

/** What the admission ended with when it did not finalize: the failure type. */
async function failureOf(h: AdmissionHarness, workflowId: string): Promise<string | null | undefined> {
  const err = await h.client.workflow.getHandle(workflowId).result().then(() => assert.fail('the admission should not finalize'), (e: unknown) => e);
  assert.ok(err instanceof WorkflowFailedError, String(err));
  return (err.cause as ApplicationFailure).type;
}

describe('a worker killed mid-admission', () => {
  let h: AdmissionHarness;
  let operatorDb: pg.Pool;
  let home: string;
  const victims: Victim[] = [];
  const workers: RunningWorker[] = [];
  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'birthgate-crash-'));
    await writeProductionBundle(home);
    h = await admissionHarness('crash', { worker: false });
    await installOperatorLogin(h.db.pool);
    operatorDb = createPool(operatorUrl(h.db.url), { max: 2, applicationName: 'test-operator' });
    operatorDb.on('error', () => undefined); // DROP DATABASE … WITH (FORCE) at teardown
  });
  after(async () => {
    for (const v of victims) if (v.child.exitCode === null && v.child.signalCode === null) v.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.stop()));
    await operatorDb?.end();
    await h?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  /**
   * One crash on a task queue of its own: a worker that kills itself at `crashAt`; `killed()` waits for
   * the kill (and checks the admission did not finish); `recover()` starts a healthy worker there.
   */
  function crashAt(point: CrashPoint) {
    const taskQueue = uniqueTaskQueue('crash');
    const victim = crashingWorker(h, home, point, taskQueue);
    victims.push(victim);
    return {
      admit: (code: string) => admitByCode(h.client, { code, fields: { name: code }, requestedBy: 'test' }, { taskQueue }),
      async killed(workflowId: string) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`the worker did not reach ${point} within ${KILL_WITHIN_MS} ms`)), KILL_WITHIN_MS);
        });
        try {
          const { signal, output } = await Promise.race([victim.exited, timeout]);
          assert.equal(signal, 'SIGKILL', `the worker should have killed itself at ${point}:\n${output}`);
        } finally {
          clearTimeout(timer);
        }
        assert.equal((await h.client.workflow.getHandle(workflowId).describe()).status.name, 'RUNNING', 'killed before the admission could finish');
      },
      async recover() {
        workers.push(await startAdmissionWorker({ taskQueue, pool: h.workerPool, workflowBundle: { codePath: bundleFiles(home).code } }));
      },
    };
  }

  describe('on the way to FINALIZED', { concurrency: true }, () => {
    // What the database holds at the kill: the side effect committed, nothing after it. A clean
    // admission's first step is openAdmission (stop-conditions and permit in one call), which passes
    // after-permit-issue; 'preflight' is passed only by a parked birth's re-reads.
    const atKill: Record<'after-permit-issue' | 'after-insert-commit' | 'after-confirm-finalized', { rows: number; births: number; permits: string[] }> = {
      'after-permit-issue': { rows: 0, births: 0, permits: ['RESERVED'] },
      'after-insert-commit': { rows: 1, births: 1, permits: ['FINALIZED'] },
      'after-confirm-finalized': { rows: 1, births: 1, permits: ['FINALIZED'] },
    };
    for (const [point, expected] of Object.entries(atKill) as [keyof typeof atKill, (typeof atKill)[keyof typeof atKill]][]) {
      test(`SIGKILL at ${point}: a new worker finishes with exactly one row, one birth and one FINALIZED permit`, async () => {
        const scene = crashAt(point);
        const code = freshCode();
        const { workflowId } = await scene.admit(code);
        await scene.killed(workflowId);
        const before = await written(h.db.pool, code);
        assert.deepEqual({ rows: before.rows, births: before.births.length, permits: before.permits.map((p) => p.state) }, expected);

        await scene.recover();
        const result = await h.client.workflow.getHandle(workflowId).result();
        assert.equal(result.stage, 'FINALIZED');
        const w = await written(h.db.pool, code);
        assert.equal(w.rows, 1);
        assert.deepEqual(w.births, [{ id: result.birthId, status: 'born' }]);
        assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state, p.row_id, p.birth_id]), [[result.permitId, 'FINALIZED', result.rowId, result.birthId]]);
        if (before.permits.length) assert.equal(before.permits[0]!.permit_id, result.permitId, 'the permit issued before the kill is the one used');
        assert.deepEqual(await permitTransitions(h.db.pool, result.permitId), CLEAN, 'each move logged once: the re-run steps found what committed');
      });
    }

    test('SIGKILL right after a break-glass insert commits: one row, one birth, the permit FINALIZED under its one ledger entry', async () => {
      const scene = crashAt('after-insert-commit');
      const code = ruleBreakingCode();
      const { workflowId } = await scene.admit(code);
      await untilStage(h.client, code, 'BLOCKED', 60_000);
      const ack = await breakGlass(h.client, operatorDb, { code }, { ...operator, approvalId: 'APR-CRASH-1' });
      assert.equal(ack.accepted, true);
      await scene.killed(workflowId);
      const before = await written(h.db.pool, code);
      assert.deepEqual({ rows: before.rows, births: before.births.length, permits: before.permits.map((p) => p.state), breakGlass: before.breakGlass },
        { rows: 1, births: 1, permits: ['FINALIZED'], breakGlass: 1 });

      await scene.recover();
      const result = await h.client.workflow.getHandle(workflowId).result();
      assert.deepEqual([result.stage, result.breakGlass], ['FINALIZED', true]);
      const w = await written(h.db.pool, code);
      assert.equal(w.rows, 1);
      assert.deepEqual(w.births, [{ id: result.birthId, status: 'born' }]);
      const permit = await h.db.pool.query('SELECT permit_id::text, state, break_glass, break_glass_id::text FROM birth_admission_permit WHERE entity_code = $1', [code]);
      assert.deepEqual(permit.rows, [{ permit_id: result.permitId, state: 'FINALIZED', break_glass: true, break_glass_id: ack.breakGlassId }]);
      const entries = await h.db.pool.query('SELECT break_glass_id::text AS id FROM birth_break_glass WHERE permit_id = $1', [result.permitId]);
      assert.deepEqual(entries.rows, [{ id: ack.breakGlassId }], 'exactly one break-glass entry for the permit');
      assert.deepEqual(await permitTransitions(h.db.pool, result.permitId),
        [[null, 'REQUESTED'], ['REQUESTED', 'REQUESTED'], ['REQUESTED', 'RESERVED'], ['RESERVED', 'CONSUMED'], ['CONSUMED', 'FINALIZED']]);
    });
  });

  describe('inside the compensations', { concurrency: true }, () => {
    test('SIGKILL right after the withdrawal of a cancelled stuck birth\'s permit: it ends CANCELLED, withdrawn once, nothing written', async () => {
      const scene = crashAt('after-permit-withdraw');
      const code = ruleBreakingCode();
      const { workflowId } = await scene.admit(code);
      await untilStage(h.client, code, 'BLOCKED', 60_000);
      const permitId = (await written(h.db.pool, code)).permits[0]!.permit_id;
      assert.equal((await cancel(h.client, { code }, operator)).accepted, true);
      await scene.killed(workflowId);
      assert.deepEqual((await written(h.db.pool, code)).permits.map((p) => p.state), ['CANCELLED'], 'the withdrawal committed before the kill');

      await scene.recover();
      assert.equal(await failureOf(h, workflowId), 'ADMISSION_CANCELLED');
      assert.deepEqual(await written(h.db.pool, code), {
        rows: 0, births: [], breakGlass: 0,
        permits: [{ permit_id: permitId, state: 'CANCELLED', break_glass: false, row_id: null, birth_id: null }],
      });
      assert.deepEqual(await permitTransitions(h.db.pool, permitId), [[null, 'REQUESTED'], ['REQUESTED', 'CANCELLED']]);
    });

    test('SIGKILL right after a rollback retired the birth of a running admission: it ends ROLLED_BACK, row gone, birth retired once', async () => {
      const scene = crashAt('after-birth-retire');
      const code = freshCode();
      const held = await holdInserts(h.db.url); // the admission waits in INSERTING until released
      let workflowId: string;
      try {
        ({ workflowId } = await scene.admit(code));
        await untilStage(h.client, code, 'INSERTING', 60_000);
        const ack = await h.client.workflow.getHandle(workflowId).executeUpdate(rollbackUpdate, { args: [operator] });
        assert.equal(ack.accepted, true);
      } finally {
        await held.release(); // the insert commits, then the rollback retires what it wrote
      }
      await scene.killed(workflowId);
      const before = await written(h.db.pool, code);
      assert.deepEqual({ rows: before.rows, births: before.births.map((b) => b.status), permits: before.permits.map((p) => p.state) },
        { rows: 0, births: ['retired'], permits: ['FINALIZED'] }, 'the retire committed before the kill');

      await scene.recover();
      assert.equal(await failureOf(h, workflowId), 'ADMISSION_ROLLED_BACK');
      const w = await written(h.db.pool, code);
      assert.equal(w.rows, 0);
      assert.deepEqual(w.births, before.births);
      assert.deepEqual(w.permits, before.permits, 'the permit stays FINALIZED, linked to the retired birth');
      assert.deepEqual(await permitTransitions(h.db.pool, w.permits[0]!.permit_id), [...CLEAN, ['FINALIZED', 'FINALIZED']], 'one rollback on the record');
      assert.deepEqual(await birthTransitions(h.db.pool, code), [{ from: 'born', to: 'retired', actor: operator.actor }], 'retired once');
    });
  });
});
