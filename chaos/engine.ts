// The Temporal engine a chaos run breaks: `dev` — the Temporal CLI's dev server as a child process
// with its persisted db file (stack/temporal.ts, as test/admit-restart.test.ts restarts it); `server` —
// the real Temporal server on PostgreSQL persistence and visibility (stack/temporal-server.ts), its
// databases on the chaos run's own PostgreSQL, so a PostgreSQL restart hits Temporal's persistence too.
// A restart stops the engine (SIGTERM), keeps it down for a moment and starts it again on the same
// port with the same state: every workflow, timer, Schedule and task queue must come back.
import path from 'node:path';
import { freePort } from '../stack/ports.ts';
import { startTemporalDevServer, type RunningTemporal } from '../stack/temporal.ts';
import {
  ensureTemporalServerBuild, freeServerPort, prepareTemporalDatabases, type RunningTemporalServer, startTemporalServer, throwawayDatabases,
} from '../stack/temporal-server.ts';
import { sleep } from './transient.ts';

export type EngineKind = 'dev' | 'server';

export type Engine = {
  kind: EngineKind;
  address: string;
  namespace: string;
  /** What runs: the binary and where its state lives (for the report's header). */
  describe: string;
  restart(downMs: number): Promise<void>;
  stop(): Promise<void>;
};

type Running = { stop(): Promise<void> };

/** One engine whose `start` can be called again after `stop` on the same address and state. */
function restartable(kind: EngineKind, address: string, namespace: string, describe: string, start: () => Promise<Running>, first: Running): Engine {
  let current: Running | undefined = first;
  return {
    kind, address, namespace, describe,
    async restart(downMs) {
      const was = current;
      current = undefined;
      await was?.stop();
      await sleep(downMs);
      current = await start();
    },
    async stop() {
      const was = current;
      current = undefined;
      await was?.stop();
    },
  };
}

export async function startDevEngine(o: { cli: string; scratch: string; namespace: string }): Promise<Engine> {
  const port = await freePort();
  const uiPort = await freePort();
  const start = (): Promise<RunningTemporal> => startTemporalDevServer({
    cli: o.cli, port, uiPort, namespace: o.namespace,
    dbFile: path.join(o.scratch, 'temporal', 'dev.db'),
    logFile: path.join(o.scratch, 'logs', 'temporal.log'),
    headless: true,
  });
  const first = await start();
  return restartable('dev', first.address, o.namespace, `Temporal dev server (${o.cli}), persisted to ${path.join(o.scratch, 'temporal', 'dev.db')}`, start, first);
}

/**
 * The real server on the chaos PostgreSQL: built once into <home>/tools (the Go module proxy; ~5 min
 * cold), its two databases created and migrated beside the estate's, then started on a fixed frontend port.
 */
export async function startServerEngine(o: {
  home: string; scratch: string; namespace: string; adminUrl: string; password: string; log: (line: string) => void;
}): Promise<Engine> {
  const build = await ensureTemporalServerBuild(o.home, o.log);
  const databases = throwawayDatabases('bg_chaos_temporal');
  await prepareTemporalDatabases({ adminUrl: o.adminUrl, password: o.password, databases, estateDatabase: undefined, build, log: o.log });
  const u = new URL(o.adminUrl);
  // Fixed across restarts (the workers and the harness keep its address); below 32768 (the server's membership table).
  const frontendPort = await freeServerPort();
  const start = (): Promise<RunningTemporalServer> => startTemporalServer({
    build,
    pg: { host: u.hostname, port: Number(u.port || 5432), password: o.password },
    databases,
    frontendPort,
    namespace: o.namespace,
    logFile: path.join(o.scratch, 'logs', 'temporal-server.log'),
  });
  const first = await start();
  return restartable('server', first.address, o.namespace,
    `Temporal server ${first.version} on PostgreSQL (${databases.persistence}, ${databases.visibility})`, start, first);
}
