// Stuck births as an operator finds them (issue 10 item 4): `birthgate stuck` and the Temporal Web UI
// in a real browser (Debian's Chromium through playwright-core) on a real dev server with its UI, a
// real admission worker and a real PostgreSQL 16. Two kinds of stuck: a birth BLOCKED on a
// stop-condition, and an admission whose workflow task keeps failing after a bad deploy — its
// BirthStage says nothing, the server's TemporalReportedProblems says it is stuck.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { NativeConnection } from '@temporalio/worker';
import { admitByCode, listStuck, STUCK_BIRTHS_QUERY, type StuckBirth } from '../client/admissions.ts';
import { projectRoot } from '../config/index.ts';
import { admissionWorkflowId } from '../contracts/admission.ts';
import type { RunningTemporal } from '../stack/temporal.ts';
import { createAdmissionWorker } from '../workers/admission-worker.ts';
import { admissionHarness, type AdmissionHarness, freshCode, written } from './support/admission-harness.ts';
import { openBrowser, SCREENSHOT_DIR, startWebUiServer, type TestBrowser } from './support/browser.ts';
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
    // The server's log beside the screenshots, this run's only.
    const log = path.join(SCREENSHOT_DIR, 'temporal.log');
    fs.rmSync(log, { force: true });
    ui = await startWebUiServer(log);
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
  // The server flags the failing one after 2 consecutive task problems (DEV_SERVER_DYNAMIC_CONFIG):
  // the first failure, then a retry that times out after 10 s. Both tests wait for it once.
  type Listed = ReturnType<typeof stuckOf> & { attemptWhenListed: number };
  let listedOnce: Promise<Listed> | undefined;
  const bothStuck = () => (listedOnce ??= eventually(async () => {
    const s = stuckOf(await listStuck(h.client));
    if (!s.blocked || !s.failing) return undefined;
    const d = await h.client.workflow.getHandle(s.failing.workflowId).describe();
    return { ...s, attemptWhenListed: d.raw.pendingWorkflowTask?.attempt ?? 0 };
  }, 'both stuck births in listStuck', 60_000));

  test('an admission whose workflow task keeps failing is a stuck birth beside the BLOCKED one, and says why', async () => {
    const listed = await bothStuck();
    assert.deepEqual(listed.blocked!.why, ['BLOCKED']);
    assert.deepEqual(listed.failing!.why, ['WORKFLOW_TASK_FAILING']);
    assert.equal(listed.failing!.stage, '', 'the bad deploy never let it set a BirthStage');
    assert.ok(listed.failing!.taskProblems.includes('category=WorkflowTaskFailed'), listed.failing!.taskProblems.join());
    assert.equal(listed.clean, undefined, 'a finalized admission is not stuck');
    // Attempts, not seconds: flagged after 2 problems, so the task on its 3rd attempt (a 4th if the
    // poll was slow) — the server's default threshold of 5 would show the 6th.
    assert.ok(listed.attemptWhenListed >= 2 && listed.attemptWhenListed <= 4, `listed at workflow task attempt ${listed.attemptWhenListed}`);

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
    assert.match(line(blocked), /^BLOCKED\s+dot_tools .*code_rule/);
    assert.match(line(failing), /^WORKFLOW_TASK_FAILING dot_tools .*workflow task failing \(WorkflowTaskFailed: WorkflowWorkerUnhandledFailure\)/);

    // The database: the BLOCKED birth holds its place with a REQUESTED permit (the one listed); the
    // failing admission never ran a step, so it wrote nothing at all.
    const parked = await written(h.db.pool, blocked);
    assert.deepEqual([parked.rows, parked.births.length, parked.permits.map((p) => p.state)], [0, 0, ['REQUESTED']]);
    assert.equal(listed.blocked!.permitId, parked.permits[0]!.permit_id);
    assert.deepEqual(await written(h.db.pool, failing), { rows: 0, births: [], permits: [], breakGlass: 0 });
  });

  test('the README documents the exact query `birthgate stuck` runs, and the view built on it', () => {
    const readme = fs.readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
    const start = readme.indexOf('\n## Stuck births in the Web UI\n');
    assert.ok(start >= 0, 'README section "Stuck births in the Web UI"');
    const end = readme.indexOf('\n## ', start + 1);
    const section = readme.slice(start, end < 0 ? undefined : end);
    assert.ok(section.includes(STUCK_BIRTHS_QUERY), 'the section shows STUCK_BIRTHS_QUERY verbatim');
    assert.ok(section.includes(`?query=${encodeURIComponent(STUCK_BIRTHS_QUERY)}`), 'and the link that opens it');
    for (const column of ['BirthStage', 'EntityCode', 'BirthCollection', 'PermitId', 'Stuck births', 'system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute']) {
      assert.ok(section.includes(column), `the section names ${column}`);
    }
  });

  test('in the Web UI the documented view shows both stuck births, recognisable without opening them; the BLOCKED one shows what it waits for and the operator actions', async () => {
    const listed = await bothStuck();
    const permitId = listed.blocked!.permitId!;
    b = await openBrowser();
    const { page } = b;
    const ns = h.client.options.namespace;

    // The README's link: the list filtered by the query `birthgate stuck` runs.
    await page.goto(`${ui.uiUrl}/namespaces/${ns}/workflows?query=${encodeURIComponent(STUCK_BIRTHS_QUERY)}`);
    const rows = page.getByTestId('workflows-summary-configurable-table-row');
    const row = (code: string) => rows.filter({ hasText: admissionWorkflowId('dot_tools', code) });
    await row(blocked).waitFor();

    // The README's columns, set once per browser (its local storage), and the saved view.
    await page.getByRole('button', { name: 'Configure Columns' }).click();
    for (const column of ['BirthStage', 'EntityCode', 'BirthCollection', 'PermitId']) await page.getByRole('button', { name: `Add ${column} column` }).click();
    for (const column of ['Run ID', 'End']) await page.getByRole('button', { name: `Remove ${column} column` }).click();
    await page.getByTestId('drawer-close-button').click();
    await page.getByTestId('create-view-button').click();
    await page.getByTestId('workflow-save-view-modal-input').fill('Stuck births');
    await page.getByRole('button', { name: 'Save', exact: true }).click();

    // Open it again from the saved view on a plain list page: the same two, nothing else.
    await page.goto(`${ui.uiUrl}/namespaces/${ns}/workflows`);
    await page.getByTestId('saved-views-button').click();
    await page.getByText('Stuck births', { exact: true }).first().click();
    await page.waitForURL(/[?&]query=/);
    // The plain list had all three; the view's is the stuck births only, the finalized one not among them.
    await eventually(async () => (await rows.count()) === 2 && (await row(clean).count()) === 0 ? true : undefined, 'the saved view listing the 2 stuck births only');
    await row(failing).waitFor();
    const cells = async (code: string) => (await row(code).locator('td').allInnerTexts()).map((t) => t.trim());
    const blockedCells = await cells(blocked);
    for (const v of ['BLOCKED', blocked, 'dot_tools', permitId]) assert.ok(blockedCells.includes(v), `BLOCKED row shows ${v}: ${blockedCells.join(' | ')}`);
    const failingCells = await cells(failing);
    assert.ok(!failingCells.includes('BLOCKED') && failingCells.includes(failing), failingCells.join(' | '));
    // The task-failing one is marked in its Status cell (the UI reads TemporalReportedProblems).
    await row(failing).getByTestId('execution-status').locator('svg').last().hover();
    await row(failing).getByText('Task Failure').waitFor();
    assert.equal(await row(blocked).getByText('Task Failure').count(), 0);
    await b.screenshot('stuck-births-list');

    // The BLOCKED one: its current details say what it waits for, and the operator's actions are the
    // admission's Updates, each with its payload.
    await row(blocked).getByRole('link', { name: admissionWorkflowId('dot_tools', blocked) }).click();
    await page.getByText('User Metadata', { exact: true }).click();
    // The UI renders each metadata field's markdown in a frame of its own: read the one that says it.
    const current = await eventually(async () => {
      for (const frame of page.frames()) {
        const text = await frame.locator('body').innerText().catch(() => '');
        if (text.includes('Waiting for:')) return text;
      }
      return undefined;
    }, 'the Current Details', 20_000);
    assert.ok(current.includes('Waiting for: an operator: retry, cancel or break-glass'), current);
    for (const v of ['BLOCKED', `- code_rule: code ${blocked} does not match`, `Permit ${permitId} (REQUESTED)`]) assert.ok(current.includes(v), `current details show ${v}`);
    await b.screenshot('stuck-birth-details');
    await page.getByRole('button', { name: 'More Actions' }).click();
    await page.getByRole('menuitem', { name: 'Send an Update' }).first().click();
    await page.getByRole('button', { name: 'Select an Update' }).click();
    // The names come from the workflow itself (its handlers' metadata query): wait for them.
    await page.getByRole('option', { name: /^retryAdmission/ }).waitFor();
    const actions = await page.getByRole('option').allInnerTexts();
    for (const a of ['retryAdmission', 'breakGlassAdmission', 'cancelAdmission']) assert.ok(actions.some((t) => t.startsWith(a)), `operator action ${a}: ${actions.join(' / ')}`);
    await b.screenshot('stuck-birth-operator-actions');

    // The task-failing one's page shows the failure an operator has to fix (the deploy, not the birth).
    await page.goto(`${ui.uiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(admissionWorkflowId('dot_tools', failing))}`);
    await page.getByText('Workflow Task Failed').first().waitFor();
    await page.getByText('bad deploy: the admission workflow cannot run').first().waitFor();
    await b.screenshot('task-failing-admission');
    // Looking changed nothing: the BLOCKED birth still holds its REQUESTED permit.
    assert.deepEqual((await written(h.db.pool, blocked)).permits.map((p) => [p.permit_id, p.state]), [[permitId, 'REQUESTED']]);
  });
});
