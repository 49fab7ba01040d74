// Capture the admission's workflow histories from real runs, for test/saved-histories.test.ts (issue 8
// "Versioning"): every scenario runs on a real PostgreSQL and the dev server through the real worker,
// and each closed run's history is written as JSON. It talks to the admission only through what every
// version has — signal-with-start, the signals, the state query and the break-glass ledger — so the
// same script captures a checkout of an earlier commit (the histories a deploy must keep replaying).
//
//   set -a; . <dev-stack env>; set +a
//   node --import tsx scripts/capture-histories.ts test/histories/<label> [--with-continue-as-new]
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import { createPool } from '../db/pool.ts';
import { admissionWorkflowId, rollbackWorkflowId } from '../contracts/admission.ts';
import { admitByCode, rollback } from '../client/admissions.ts';
import { prepareAdmissionWorld } from '../test/support/admission-world.ts';
import { freshDatabase } from '../test/support/db.ts';
import { testEnv } from '../test/support/env.ts';
import { eventually, startAdmissionWorker, temporalClient, uniqueTaskQueue } from '../test/support/temporal.ts';
import { freshCode } from '../test/support/admission-harness.ts';

const out = process.argv[2];
if (!out) throw new Error('usage: capture-histories.ts <output dir> [--with-continue-as-new]');
const withContinueAsNew = process.argv.includes('--with-continue-as-new');
const op = { actor: 'ops@histories', reason: 'captured scenario' };
const parking = () => `DOT_HIST_${freshCode().slice(4)}`; // outside the dot_tools rule: parks on code_rule

const db = await freshDatabase('histories');
db.pool.on('error', () => undefined);
const { workerUrl } = await prepareAdmissionWorld(db.pool, db.url);
const workerPool = createPool(workerUrl, { max: 10, applicationName: 'capture-histories' });
workerPool.on('error', () => undefined);
const taskQueue = uniqueTaskQueue('histories');
const worker = await startAdmissionWorker({ taskQueue, pool: workerPool });
const t = await temporalClient();
const client = t.client;

type State = { stage: string; permit: { permitId: string } | null; decisions: unknown[]; runs?: number; resuming?: boolean };
const handle = (code: string) => client.workflow.getHandle(admissionWorkflowId('dot_tools', code));
const state = (code: string) => handle(code).query<State>('state');
const parked = (code: string, min = 0) =>
  eventually(async () => {
    const s = await state(code).catch(() => undefined);
    return s?.stage === 'BLOCKED' && !s.resuming && s.decisions.length >= min ? s : undefined;
  }, `${code} parked`, 60_000);
const staged = (code: string, stage: string) =>
  eventually(async () => ((await state(code).catch(() => undefined))?.stage === stage ? true : undefined), `${code} ${stage}`, 60_000);
const start = (code: string, fields: Record<string, unknown> = {}, historyBudget?: number) =>
  admitByCode(client, { code, fields, requestedBy: 'capture', ...(historyBudget ? { historyBudget } : {}) } as never, { taskQueue });
const ended = (h: WorkflowHandle) => h.result().catch(() => undefined);

async function openBreakGlass(code: string, approvalId: string): Promise<string> {
  const s = await state(code);
  const { rows } = await db.pool.query<{ id: string }>(
    `SELECT (fn_break_glass_open($1, 'dot_tools', $2, $3, $4, $5::bigint, NULL)).break_glass_id AS id`,
    [code, op.actor, op.reason, approvalId, s.permit!.permitId]);
  return String(rows[0]!.id);
}

const scenarios: Record<string, () => Promise<string[]>> = {
  async clean() {
    const code = freshCode();
    await start(code, { category: 'clean' });
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  },
  async attach() {
    const code = parking();
    await start(code);
    await parked(code);
    await start(code); // a second admit attaches (the attach signal)
    await handle(code).signal('cancel', op);
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  },
  async 'stuck-retry-break-glass'() {
    const code = parking();
    await start(code);
    await parked(code);
    await handle(code).signal('retry', { actor: op.actor, reason: 'look again' });
    await parked(code, 1);
    const breakGlassId = await openBreakGlass(code, 'HIST-1');
    await handle(code).signal('breakGlass', { ...op, approvalId: 'HIST-1', breakGlassId });
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  },
  async cancel() {
    const code = parking();
    await start(code);
    await parked(code);
    await handle(code).signal('cancel', op);
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  },
  async 'rollback-while-parked'() {
    const code = parking();
    await start(code);
    await parked(code);
    await handle(code).signal('rollback', op);
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  },
  async 'rollback-after-finalized'() {
    const code = freshCode();
    await start(code);
    await ended(handle(code));
    await rollback(client, { code }, op, { taskQueue });
    return [admissionWorkflowId('dot_tools', code), rollbackWorkflowId('dot_tools', code)];
  },
  async 'compensation-failed'() {
    // The withdraw of the parked permit cannot find it (a superuser deleted it): non-retryable, so the
    // admission parks COMPENSATION_FAILED; a second cancel abandons it (repaired by hand).
    const code = parking();
    await start(code);
    const s = await parked(code);
    await db.pool.query('DELETE FROM birth_admission_permit_transition WHERE permit_id = $1', [s.permit!.permitId]);
    await db.pool.query('DELETE FROM birth_admission_permit WHERE permit_id = $1', [s.permit!.permitId]);
    await handle(code).signal('cancel', op);
    await staged(code, 'COMPENSATION_FAILED');
    await handle(code).signal('cancel', { ...op, reason: 'repaired by hand' });
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  },
};
if (withContinueAsNew) {
  scenarios['continue-as-new'] = async () => {
    const code = parking();
    await start(code, {}, 150);
    await parked(code);
    for (let i = 0; i < 80 && ((await state(code)).runs ?? 1) < 3; i++) {
      const before = (await state(code)).decisions.length;
      await handle(code).signal('retry', { actor: op.actor, reason: `look again ${i}` });
      await eventually(async () => {
        const s = await state(code).catch(() => undefined);
        return s && s.stage === 'BLOCKED' && !s.resuming && (s.decisions.length > before || (s.runs ?? 1) > 1) ? true : undefined;
      }, 'retried', 60_000);
    }
    const breakGlassId = await openBreakGlass(code, 'HIST-CAN');
    await handle(code).signal('breakGlass', { ...op, approvalId: 'HIST-CAN', breakGlassId });
    await ended(handle(code));
    return [admissionWorkflowId('dot_tools', code)];
  };
}

try {
  fs.mkdirSync(out, { recursive: true });
  for (const [name, run] of Object.entries(scenarios)) {
    const ids = await run();
    for (const [i, workflowId] of ids.entries()) {
      // Every run of the chain (a continued-as-new admission has several).
      let n = 0;
      for await (const w of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        // The Temporal CLI's JSON (proto3 JSON mapping): what `Worker.runReplayHistory` reads back.
        const env = testEnv();
        const json = execFileSync(env.temporalCli, ['workflow', 'show', '--address', env.temporalAddress, '--namespace', env.namespace,
          '--workflow-id', workflowId, '--run-id', w.runId, '--output', 'json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
        const history = JSON.parse(json) as { events: unknown[] };
        const file = path.join(out, `${name}${ids.length > 1 ? `-${i + 1}` : ''}-run${++n}.json`);
        fs.writeFileSync(file, `${JSON.stringify({ workflowId, runId: w.runId, history })}\n`);
        process.stderr.write(`[histories] ${file}: ${history.events.length} events\n`);
      }
    }
  }
} finally {
  await worker.stop();
  await t.close();
  await workerPool.end();
  await db.dispose();
}
