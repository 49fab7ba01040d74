// Take a running stack down and make sure nothing it started is left behind.
import type { Config } from '../config/index.ts';
import { readState, removeState } from './endpoints.ts';
import { isAlive, postmasterPid } from './postgres.ts';

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !isAlive(pid);
}

async function terminate(pid: number | undefined, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (pid === undefined || !isAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  if (!(await waitGone(pid, graceMs))) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await waitGone(pid, 5_000);
  }
}

/** Returns what was stopped, for the CLI to report. */
export async function stackDown(config: Config): Promise<string[]> {
  const state = readState(config);
  if (!state) return [];
  const stopped: string[] = [];
  // The supervisor stops its children cleanly on SIGTERM.
  if (isAlive(state.supervisorPid)) {
    await terminate(state.supervisorPid, 'SIGTERM', 30_000);
    stopped.push(`supervisor ${state.supervisorPid}`);
  }
  // Whatever survived a killed supervisor: Temporal by pid, PostgreSQL by its postmaster.pid
  // (SIGINT = fast shutdown).
  if (state.temporal?.pid && isAlive(state.temporal.pid)) {
    await terminate(state.temporal.pid, 'SIGTERM', 15_000);
    stopped.push(`temporal ${state.temporal.pid}`);
  }
  const pgPid = state.postgres ? postmasterPid(state.postgres.dataDir) ?? state.postgres.pid : undefined;
  if (pgPid && isAlive(pgPid)) {
    await terminate(pgPid, 'SIGINT', 30_000);
    stopped.push(`postgres ${pgPid}`);
  }
  removeState(config);
  return stopped;
}
