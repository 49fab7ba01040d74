// Stuck births as an operator finds them (issue 10 item 4): `birthgate stuck` and the Temporal Web UI
// in a real browser (Debian's Chromium through playwright-core) on a real dev server with its UI, a
// real admission worker and a real PostgreSQL 16. Two kinds of stuck: a birth BLOCKED on a
// stop-condition, and an admission whose workflow task keeps failing after a bad deploy — its
// BirthStage says nothing, the server's TemporalReportedProblems says it is stuck.
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import fs from 'node:fs';
import { NativeConnection } from '@temporalio/worker';
import { admitByCode, listStuck, STUCK_BIRTHS_QUERY, type StuckBirth } from '../client/admissions.ts';
import { projectRoot } from '../config/index.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import type { RunningTemporal } from '../stack/temporal.ts';
import { createAdmissionWorker } from '../workers/admission-worker.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { openBrowser, startWebUiServer, type TestBrowser } from './support/browser.ts';
import { runCli } from './support/cli.ts';
import { eventually, type RunningWorker } from './support/temporal.ts';

/** Fails the dot_tools family rule (registry pattern of step 13): a stop-condition, so it parks BLOCKED. */
const ruleBreakingCode = () => `Tool_${randomInt(1e8, 1e9)}`;
const fields = (code: string) => ({ name: `tool ${code}` });

describe('stuck births: `birthgate stuck` and the Web UI', () => {
  let ui: RunningTemporal;
  let h: AdmissionHarness;
  let badDeploy: RunningWorker;
  let b: TestBrowser | undefined;
  const blocked = ruleBreakingCode();
  const failing = freshCode();
  const clean = freshCode();

  before(async () => {
    ui = await startWebUiServer(path.join(projectRoot, 'reports', 'ui', 'temporal.log'));
    // This file's admissions run on the dev server with the Web UI: the harness's own is headless,
    // and the support helpers read the address from the environment.
    process.env.TEMPORAL_ADDRESS = ui.address;
    h = await admissionHarness('ui');
    // The bad deploy polls a task queue of its own, so the good worker never picks its admission up.
    const connection = await NativeConnection.connect({ address: ui.address });
    const worker = await createAdmissionWorker({
      connection,
      namespace: h.client.options.namespace,
      taskQueue: `${h.taskQueue}-bad-deploy`,
      pool: h.workerPool,
      workflowsPath: path.join(projectRoot, 'test', 'support', 'bad-deploy-workflows.ts'),
    });
    const done = worker.run();
    badDeploy = { worker, stop: async () => { worker.shutdown(); await done; await connection.close(); } };

    const admit = (code: string, taskQueue: string, wait: boolean) =>
      admitByCode(h.client, { code, fields: fields(code), requestedBy: 'test-ui' }, { taskQueue, wait });
    assert.equal((await admit(clean, h.taskQueue, true)).result?.stage, 'FINALIZED');
    await admit(blocked, h.taskQueue, false);
    await admit(failing, `${h.taskQueue}-bad-deploy`, false);
  });
  after(async () => {
    await b?.close();
    await badDeploy?.stop();
    await h?.stop();
    await ui?.stop();
  });

  const stuckOf = (all: StuckBirth[]) => ({
    blocked: all.find((s) => s.code === blocked),
    failing: all.find((s) => s.code === failing),
    clean: all.find((s) => s.code === clean),
  });

  test('an admission whose workflow task keeps failing is a stuck birth beside the BLOCKED one, and says why', async () => {
    // The server flags it after 2 consecutive task problems (DEV_SERVER_DYNAMIC_CONFIG): the first
    // failure, then a retry that times out after 10 s.
    const listed = await eventually(async () => {
      const s = stuckOf(await listStuck(h.client));
      return s.blocked && s.failing ? s : undefined;
    }, 'both stuck births in listStuck', 60_000);
    assert.deepEqual(listed.blocked!.why, ['BLOCKED']);
    assert.deepEqual(listed.failing!.why, ['WORKFLOW_TASK_FAILING']);
    assert.equal(listed.failing!.stage, '', 'the bad deploy never let it set a BirthStage');
    assert.ok(listed.failing!.taskProblems.includes('category=WorkflowTaskFailed'), listed.failing!.taskProblems.join());
    assert.equal(listed.clean, undefined, 'a finalized admission is not stuck');

    // The CLI: JSON for machines, and a first column saying why for people.
    const env = { ...process.env, TEMPORAL_ADDRESS: ui.address, DATABASE_URL: h.db.url };
    const json = await runCli(['stuck', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    const fromCli = stuckOf(JSON.parse(json.stdout) as StuckBirth[]);
    assert.deepEqual([fromCli.blocked?.why, fromCli.failing?.why, fromCli.clean], [['BLOCKED'], ['WORKFLOW_TASK_FAILING'], undefined]);
    assert.equal(fromCli.failing?.workflowId, admissionWorkflowId('dot_tools', failing));
    const text = await runCli(['stuck'], env);
    assert.equal(text.code, 0, text.stderr);
    const line = (code: string) => text.stdout.split('\n').find((l) => l.includes(` ${code} `)) ?? '';
    assert.match(line(blocked), /^BLOCKED\s+dot_tools /);
    assert.match(line(failing), /^WORKFLOW_TASK_FAILING dot_tools .*workflow task failing \(WorkflowTaskFailed: WorkflowWorkerUnhandledFailure\)/);

    // The database: the BLOCKED birth holds its place with a REQUESTED permit; the failing admission
    // never ran a step, so it wrote nothing at all.
    const parked = await written(h.db.pool, blocked);
    assert.deepEqual([parked.rows, parked.births.length, parked.permits.map((p) => p.state)], [0, 0, ['REQUESTED']]);
    assert.deepEqual(await written(h.db.pool, failing), { rows: 0, births: [], permits: [], breakGlass: 0 });
  });

  test('DEBUG detail page', async () => {
    b = await openBrowser();
    const page = b.page;
    await page.goto(`${ui.uiUrl}/namespaces/default/workflows/${encodeURIComponent(admissionWorkflowId('dot_tools', blocked))}`);
    await page.getByText('User Metadata', { exact: true }).click();
    await page.waitForTimeout(1500);
    await b.screenshot('debug-metadata');
    fs.writeFileSync('/tmp/hH/detail.txt', await page.locator('main').innerText());
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.waitForTimeout(1000);
    await b.screenshot('debug-actions');
    fs.writeFileSync('/tmp/hH/actions.txt', await page.locator('body').innerText());
await page.getByRole('menuitem', { name: 'Send an Update' }).first().click();
    await page.waitForTimeout(1500);
    await b.screenshot('debug-update');
    await page.getByRole('button', { name: 'Select an Update' }).click();
    await page.waitForTimeout(500);
    await b.screenshot('debug-update-list');
    fs.writeFileSync('/tmp/hH/update.txt', (await page.getByRole('option').allInnerTexts()).join('\n'));
    const ctl = await page.locator('select, input, [role=combobox], [role=listbox], [role=option], button').evaluateAll((els) => els.filter((e) => (e as HTMLElement).offsetParent !== null).map((e) => `${e.tagName} role=${e.getAttribute('role')} id=${e.id} tid=${e.getAttribute('data-testid')} aria=${e.getAttribute('aria-label')} text=${((e as HTMLElement).innerText ?? '').trim().slice(0, 50)}`));
    fs.writeFileSync('/tmp/hH/menu.txt', ctl.join('\n'));
  });
});
