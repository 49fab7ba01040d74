// The stack starts itself, says where it is, refuses a taken port clearly, leaves nothing behind,
// and a Temporal dev server restart keeps a finished workflow's history (it persists to a db file).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { projectRoot } from '../config/index.ts';
import { withClient } from '../db/pool.ts';
import { isAlive } from '../stack/postgres.ts';
import { freePort } from '../stack/ports.ts';
import { runCli } from './support/cli.ts';
import { testEnv } from './support/env.ts';

let env: NodeJS.ProcessEnv;
let home: string;

before(async () => {
  const scratch = process.env.BIRTHGATE_TEST_SCRATCH ?? fs.mkdtempSync('/tmp/bg-stack-');
  home = path.join(scratch, `stack-${process.pid}`);
  env = {
    BIRTHGATE_HOME: home,
    BIRTHGATE_PG_PORT: String(await freePort()),
    BIRTHGATE_TEMPORAL_PORT: String(await freePort()),
    BIRTHGATE_UI_PORT: String(await freePort()),
    TEMPORAL_CLI: testEnv().temporalCli,
    DATABASE_URL: '',
    TEMPORAL_ADDRESS: '',
  };
  // An empty string would fail URL validation; unset them for the child instead.
  delete env.DATABASE_URL;
  delete env.TEMPORAL_ADDRESS;
});

after(async () => {
  await runCli(['stack', 'down'], childEnv());
});

function childEnv(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete e.DATABASE_URL;
  delete e.TEMPORAL_ADDRESS;
  return e;
}

type Status = { running: boolean; databaseUrl: string; temporalAddress: string; namespace: string; uiUrl: string; supervisorPid: number };

async function status(): Promise<Status> {
  const r = await runCli(['stack', 'status', '--json', '--show-secrets'], childEnv());
  assert.equal(r.code, 0, `stack status failed: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Status;
}

test('stack up --detach starts PostgreSQL 16 and Temporal, and status says where they are', async () => {
  const up = await runCli(['stack', 'up', '--detach'], childEnv());
  assert.equal(up.code, 0, up.stderr);
  const s = await status();
  assert.equal(s.running, true);
  assert.match(s.databaseUrl, /^postgres:\/\/postgres:/);
  // Without --show-secrets no password reaches the output (it ends up in logs and CI transcripts).
  const masked = await runCli(['stack', 'status', '--json'], childEnv());
  assert.equal(masked.code, 0, masked.stderr);
  const m = JSON.parse(masked.stdout) as { databaseUrl: string; workerDatabaseUrl: string };
  assert.equal(new URL(m.databaseUrl).password, '***');
  assert.equal(new URL(m.workerDatabaseUrl).password, '***');
  for (const secret of [new URL(s.databaseUrl).password, new URL((JSON.parse((await runCli(['stack', 'status', '--json', '--show-secrets'], childEnv())).stdout) as { workerDatabaseUrl: string }).workerDatabaseUrl).password]) {
    assert.ok(secret.length > 0 && !masked.stdout.includes(secret) && !masked.stderr.includes(secret), 'a password was printed');
  }
  assert.equal(s.temporalAddress, `127.0.0.1:${env.BIRTHGATE_TEMPORAL_PORT}`);
  assert.equal(s.namespace, 'default');
  assert.equal(s.uiUrl, `http://127.0.0.1:${env.BIRTHGATE_UI_PORT}`);
  const version = await withClient(s.databaseUrl, (c) => c.query<{ v: string }>("SELECT current_setting('server_version') AS v"));
  assert.match(version.rows[0]!.v, /^16\./);
  const ui = await fetch(s.uiUrl);
  assert.equal(ui.status, 200, 'the Web UI answers');
  const connection = await Connection.connect({ address: s.temporalAddress });
  const attrs = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
  await connection.close();
  for (const name of ['BirthStage', 'EntityCode', 'BirthCollection', 'PermitId', 'BreakGlass']) {
    assert.ok(name in (attrs.customAttributes ?? {}), `search attribute ${name} registered`);
  }
});

test('a taken port is a clear error and a non-zero exit', async () => {
  const blocker = net.createServer();
  const port = await freePort();
  await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
  try {
    const r = await runCli(['stack', 'up', '--detach'], { ...childEnv(), BIRTHGATE_HOME: `${home}-other`, BIRTHGATE_PG_PORT: String(port) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`port ${port} \\(PostgreSQL, set BIRTHGATE_PG_PORT to change it\\) is already in use`));
  } finally {
    blocker.close();
  }
});

test('a missing Temporal binary is a clear error and a non-zero exit, and nothing is left running', async () => {
  const other = `${home}-nocli`;
  const r = await runCli(['stack', 'up', '--detach'], {
    ...childEnv(),
    BIRTHGATE_HOME: other,
    BIRTHGATE_PG_PORT: String(await freePort()),
    BIRTHGATE_TEMPORAL_PORT: String(await freePort()),
    BIRTHGATE_UI_PORT: String(await freePort()),
    TEMPORAL_CLI: '/nonexistent/temporal',
  });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /TEMPORAL_CLI=\/nonexistent\/temporal is not a working temporal binary/);
  assert.equal(fs.existsSync(path.join(other, 'stack.json')), false, 'no stack recorded as running');
});

test('a Temporal dev server restart keeps a finished workflow history', async () => {
  const s = await status();
  const workflowId = `stack-probe-${process.pid}`;
  {
    const connection = await Connection.connect({ address: s.temporalAddress });
    const worker = await Worker.create({
      connection: await (await import('@temporalio/worker')).NativeConnection.connect({ address: s.temporalAddress }),
      taskQueue: 'stack-probe',
      workflowsPath: path.join(projectRoot, 'workflows', 'stack-probe.ts'),
    });
    const client = new Client({ connection });
    const result = await worker.runUntil(client.workflow.execute('stackProbe', { args: ['hello'], taskQueue: 'stack-probe', workflowId }));
    assert.equal(result, 'probe:hello');
    await connection.close();
  }
  const down = await runCli(['stack', 'down'], childEnv());
  assert.equal(down.code, 0, down.stderr);
  assert.throws(() => process.kill(s.supervisorPid, 0), 'supervisor is gone');
  const up = await runCli(['stack', 'up', '--detach'], childEnv());
  assert.equal(up.code, 0, up.stderr);
  const connection = await Connection.connect({ address: s.temporalAddress });
  const client = new Client({ connection });
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  assert.equal(description.status.name, 'COMPLETED');
  assert.equal(await handle.result(), 'probe:hello');
  const history = await handle.fetchHistory();
  assert.ok((history.events?.length ?? 0) >= 5, 'history events survive the restart');
  await connection.close();
});

test('stack down leaves no process behind', async () => {
  const s = await status();
  const state = JSON.parse(fs.readFileSync(path.join(home, 'stack.json'), 'utf8')) as { postgres: { pid: number }; temporal: { pid: number } };
  const down = await runCli(['stack', 'down'], childEnv());
  assert.equal(down.code, 0);
  for (const pid of [s.supervisorPid, state.postgres.pid, state.temporal.pid]) assert.equal(isAlive(pid), false, `pid ${pid} is gone`);
  assert.equal(fs.existsSync(path.join(home, 'stack.json')), false);
  const after = await runCli(['stack', 'status', '--json'], childEnv());
  assert.equal(after.code, 1);
  assert.equal((JSON.parse(after.stdout) as { running: boolean }).running, false);
});
