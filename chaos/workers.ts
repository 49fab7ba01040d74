// The worker processes of a chaos run: workers/main.ts as children (the production worker without the
// CLI, as test/admit-crash.test.ts spawns it), each connected as birthgate_worker to the run's database
// and polling the run's task queue, running the prebuilt production bundle from the stack's
// BIRTHGATE_HOME. The fault injector SIGKILLs one and starts a new one; a worker that dies on its own
// (it cannot reach Temporal while the server restarts) is started again and counted. stop() drains
// them (SIGTERM) and kills whatever is left, so no process outlives the run.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/index.ts';
import { stopChild } from '../stack/temporal.ts';
import type { Prng } from './prng.ts';
import { sleep } from './transient.ts';

export type FleetOptions = {
  home: string;
  workerUrl: string;
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  logDir: string;
  size: number;
  log: (line: string) => void;
};

type Member = { slot: number; child: ChildProcess; ready: Promise<void>; exited: Promise<void>; killed: boolean };

/** How long a worker may take from spawn to polling (tsx, the bundle, connections) on a loaded 2-core machine. */
const READY_WITHIN_MS = 90_000;

export class WorkerFleet {
  private readonly members = new Map<number, Member>();
  private stopping = false;
  private spawned = 0;
  /** Exits nobody asked for (not a SIGKILL of the injector, not stop()). */
  unexpectedExits = 0;
  /** Workers that had to build the workflow bundle at start (the prebuilt one no longer matched the code). */
  builtAtStart = 0;

  constructor(private readonly o: FleetOptions) {}

  async start(): Promise<void> {
    for (let slot = 0; slot < this.o.size; slot++) this.spawn(slot);
    await this.healthy();
  }

  /** SIGKILL one live worker (chosen by `rng`) and start its replacement; resolves when the new one polls. */
  async killOne(rng: Prng): Promise<{ pid: number | undefined }> {
    const live = [...this.members.values()].filter((m) => m.child.exitCode === null && m.child.signalCode === null);
    if (live.length === 0) throw new Error('no live worker to kill');
    const victim = rng.pick(live);
    victim.killed = true;
    victim.child.kill('SIGKILL');
    await victim.exited;
    this.spawn(victim.slot);
    await this.healthy();
    return { pid: victim.child.pid };
  }

  /** Wait until every slot has a worker that polls (one that died before it polled is replaced meanwhile). */
  async healthy(timeoutMs = 2 * READY_WITHIN_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const slot of this.members.keys()) {
      for (;;) {
        try {
          await this.members.get(slot)!.ready;
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await sleep(500);
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.members.values()].map((m) => stopChild(m.child, 20_000)));
  }

  private spawn(slot: number): Member {
    this.spawned += 1;
    const logFile = path.join(this.o.logDir, `worker-${slot}-${this.spawned}.log`);
    fs.mkdirSync(this.o.logDir, { recursive: true });
    const out = fs.createWriteStream(logFile);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'workers', 'main.ts')], {
      cwd: projectRoot,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        BIRTHGATE_HOME: this.o.home,
        BIRTHGATE_WORKER_DATABASE_URL: this.o.workerUrl,
        TEMPORAL_ADDRESS: this.o.temporalAddress,
        TEMPORAL_NAMESPACE: this.o.namespace,
        BIRTHGATE_TASK_QUEUE: this.o.taskQueue,
        BIRTHGATE_LOG_FORMAT: 'text',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let seen = '';
    let counted = false;
    let markReady: () => void = () => undefined;
    let failReady: (err: Error) => void = () => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      failReady = reject;
    });
    const timer = setTimeout(() => failReady(new Error(`worker ${child.pid} did not start polling within ${READY_WITHIN_MS / 1000} s; see ${logFile}`)), READY_WITHIN_MS);
    const onData = (d: Buffer) => {
      out.write(d);
      if (seen.length < 20_000) seen += d.toString();
      if (!counted && /built the workflow bundle now/.test(seen)) {
        counted = true;
        this.builtAtStart += 1;
      }
      if (/task queue/.test(seen)) {
        clearTimeout(timer);
        markReady();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const member: Member = {
      slot,
      child,
      ready,
      killed: false,
      exited: new Promise<void>((resolve) => child.once('exit', () => {
        clearTimeout(timer);
        out.end();
        resolve();
      })),
    };
    this.members.set(slot, member);
    void member.exited.then(async () => {
      if (this.stopping || member.killed) return;
      this.unexpectedExits += 1;
      this.o.log(`worker ${child.pid} (slot ${slot}) exited on its own (${child.exitCode ?? child.signalCode}); starting another — see ${logFile}`);
      failReady(new Error(`worker ${child.pid} exited before it polled; see ${logFile}`));
      await sleep(1_000);
      if (!this.stopping && this.members.get(slot) === member) this.spawn(slot);
    });
    // A worker that exits before polling is replaced above: its own readiness must not reject unheard.
    ready.catch(() => undefined);
    return member;
  }
}
