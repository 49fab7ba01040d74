// The Temporal dev server as a child process: persisted to a db file, Web UI on, our search
// attributes registered at start and again through the operator service when missing (the
// `--search-attribute` flag may not add a new one to an existing db file).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { searchAttributeCliTypes } from '../contracts/search-attributes.ts';
import { waitFor } from './ports.ts';

export type TemporalDevServerOptions = {
  cli: string;
  port: number;
  uiPort: number;
  namespace: string;
  /** Persist here; undefined = in-memory (tests). */
  dbFile: string | undefined;
  logFile: string;
  headless?: boolean;
};

export type RunningTemporal = { child: ChildProcess; address: string; uiUrl: string; stop(): Promise<void> };

/**
 * Dynamic config for every dev server we start (stack, test harness, benches).
 *
 * history.transferProcessorMaxPollRPS (default 20 polls/s per history shard):
 * every workflow task, and every activity task not dispatched eagerly, reaches matching through the
 * history transfer queue, whose reader may poll only 20 times a second. Back to back, each task then
 * waited ~37 ms (history: WorkflowTaskScheduled→Started p50 36.7 ms, 5 per echo run) and the echo
 * workflow took ~250 ms start→result at concurrency 1; with the limit lifted that gap is ~1.6 ms and
 * the run ~60–70 ms. Only the first few runs after idle were fast (the limiter's burst). Measured with
 * 1.9.1 / Server 1.32; the effect is verified by the latency change, the key is a plain int setting.
 *
 * system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute (namespace int; Server 1.32's
 * default 5, 0 turns it off): after this many consecutive workflow task failures or timeouts the
 * server sets `TemporalReportedProblems` (['category=WorkflowTaskFailed'|'…TimedOut', 'cause=…']) and
 * clears it on the next completed task. An admission whose task keeps failing (a nondeterminism error
 * after a bad deploy, a bundle that does not load) is stuck though its `BirthStage` never changes;
 * this is how `birthgate stuck` and the Web UI find it. 2, not 5: the SDK reports only a task's first
 * failure and lets the later attempts time out (10 s each), so 5 took ~55 s and 2 takes ~12 s;
 * one crashed worker is a single timeout followed by a success and is never flagged. The real
 * server's dynamic config sets the same key (stack/temporal-server/).
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Record<string, unknown> = {
  'history.transferProcessorMaxPollRPS': 1000,
  'system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute': 2,
};

export const devServerDynamicConfigArgs = (): string[] =>
  Object.entries(DEV_SERVER_DYNAMIC_CONFIG).flatMap(([k, v]) => ['--dynamic-config-value', `${k}=${JSON.stringify(v)}`]);

export async function startTemporalDevServer(o: TemporalDevServerOptions): Promise<RunningTemporal> {
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(o.port), '--namespace', o.namespace, '--log-level', 'warn'];
  args.push(...devServerDynamicConfigArgs());
  if (o.headless) args.push('--headless');
  else args.push('--ui-port', String(o.uiPort), '--ui-disable-news-fetch');
  if (o.dbFile) {
    fs.mkdirSync(path.dirname(o.dbFile), { recursive: true });
    args.push('--db-filename', o.dbFile);
  }
  for (const [name, type] of Object.entries(searchAttributeCliTypes)) args.push('--search-attribute', `${name}=${type}`);
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true });
  const log = fs.openSync(o.logFile, 'a');
  const child = spawn(o.cli, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `temporal dev server exited (${signal ?? code}); see ${o.logFile}`));
  const address = `127.0.0.1:${o.port}`;
  await waitFor('the Temporal dev server', 60_000, async () => {
    if (exited) throw Object.assign(new Error(exited), { fatal: true });
    const connection = await Connection.connect({ address, connectTimeout: 1_000 });
    try {
      await connection.workflowService.getSystemInfo({});
      return true;
    } finally {
      await connection.close();
    }
  }).catch((err) => {
    child.kill('SIGKILL');
    throw new Error(exited ?? (err as Error).message);
  });
  await ensureSearchAttributes(address, o.namespace);
  return {
    child,
    address,
    uiUrl: `http://127.0.0.1:${o.uiPort}`,
    stop: () => stopChild(child, 15_000),
  };
}

// @temporalio/proto is CommonJS: take the enum from its default export.
const { IndexedValueType } = proto.temporal.api.enums.v1;
const cliTypeToIndexed: Record<string, proto.temporal.api.enums.v1.IndexedValueType> = {
  Keyword: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  Bool: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
};

/** Register our custom search attributes on any server (dev or external) where they are missing. */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<string[]> {
  const connection = await Connection.connect({ address });
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const have = new Set(Object.keys(existing.customAttributes ?? {}));
    const missing = Object.entries(searchAttributeCliTypes).filter(([name]) => !have.has(name));
    if (missing.length > 0) {
      const searchAttributes = Object.fromEntries(missing.map(([name, type]) => [name, cliTypeToIndexed[type]!]));
      await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
    }
    return missing.map(([name]) => name);
  } finally {
    await connection.close();
  }
}

export function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
