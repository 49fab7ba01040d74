// A real worker process killed with SIGKILL inside an activity (issue 4 "Crash"): right after the
// insert commits and before the activity completes, during preflight, and right after the permit is
// issued. A new worker finishes the admission: exactly one row and one birth, one permit, FINALIZED.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CrashPoint } from '../activities/hooks.ts';
import { admitByCode } from '../client/admissions.ts';
import { projectRoot } from '../config/index.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { testEnv } from './support/env.ts';

/** workers/main.ts as a child process that SIGKILLs itself at `crashAt`; resolves with how it ended. */
function crashingWorker(h: AdmissionHarness, crashAt: CrashPoint): { exited: Promise<{ signal: string | null; output: string }> } {
  const env = testEnv();
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'main.ts')], {
    cwd: projectRoot,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'test',
      BIRTHGATE_TEST_CRASH_AT: crashAt,
      BIRTHGATE_WORKER_DATABASE_URL: h.workerUrl,
      TEMPORAL_ADDRESS: env.temporalAddress,
      TEMPORAL_NAMESPACE: env.namespace,
      BIRTHGATE_TASK_QUEUE: h.taskQueue,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return { exited: new Promise((resolve) => child.once('exit', (_code, signal) => resolve({ signal, output }))) };
}

const activityAt: Record<CrashPoint, string> = {
  preflight: 'preflight',
  'after-permit-issue': 'issuePermit',
  'after-insert-commit': 'insertGovernedRow',
};

describe('a worker killed mid-admission', () => {
  let h: AdmissionHarness;
  before(async () => (h = await admissionHarness('crash', { worker: false })));
  after(async () => h?.stop());

  for (const crashAt of ['after-insert-commit', 'preflight', 'after-permit-issue'] as const) {
    test(`SIGKILL at ${crashAt}: a new worker finishes with exactly one birth and no orphan permit`, async () => {
      await h.worker?.stop();
      h.worker = undefined;
      const code = freshCode();
      const victim = crashingWorker(h, crashAt);
      const admitted = await admitByCode(h.client, { code, fields: { name: code } }, { taskQueue: h.taskQueue });
      const { signal, output } = await victim.exited;
      assert.equal(signal, 'SIGKILL', `the worker should have killed itself at ${crashAt}:\n${output}`);

      const before = await written(h.db.pool, code);
      if (crashAt === 'after-insert-commit') {
        assert.equal(before.rows, 1, 'the insert committed before the kill');
        assert.deepEqual(before.permits.map((p) => p.state), ['FINALIZED']);
      }

      await h.startWorker();
      const result = await h.client.workflow.getHandle(admitted.workflowId).result();
      assert.equal(result.stage, 'FINALIZED');
      const w = await written(h.db.pool, code);
      assert.equal(w.rows, 1);
      assert.equal(w.births.length, 1);
      assert.deepEqual(w.permits.map((p) => [p.permit_id, p.state]), [[result.permitId, 'FINALIZED']]);

      // The history shows the killed attempt was retried, not skipped.
      const history = await h.client.workflow.getHandle(admitted.workflowId).fetchHistory();
      const scheduled = new Map<string, string>();
      let attempts = 0;
      for (const e of history.events ?? []) {
        const s = e.activityTaskScheduledEventAttributes;
        if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
        const started = e.activityTaskStartedEventAttributes;
        if (started && scheduled.get(String(started.scheduledEventId)) === activityAt[crashAt]) attempts = Math.max(attempts, started.attempt ?? 0);
      }
      assert.ok(attempts >= 2, `${activityAt[crashAt]} ran ${attempts} time(s)`);
    });
  }
});
