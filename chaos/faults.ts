// The fault injector: the plan's faults, each injected right before its admission starts and only once
// the previous fault is over, so faults land among admissions in flight in the order the seed drew:
//  - worker-kill: SIGKILL a worker process (which one: the seed), start a new one;
//  - temporal-restart: the Temporal engine stopped, down for a moment, started on its persisted state;
//  - postgres-restart: fast shutdown of the cluster (every backend, the worker's and Temporal's on the
//    server engine, cut mid-statement), down for a moment, started again;
//  - backend-terminate: pg_terminate_backend of every backend of birthgate_worker in the run's database;
//  - stop-condition: the chaos BLOCK dim raised for a while (admissions park on it), then cleared.
import type { Pool } from '../db/pool.ts';
import { FAULT_LABELS, FaultKind, type PlannedFault } from './plan.ts';
import type { Prng } from './prng.ts';
import type { ChaosStack } from './stack.ts';
import { persist, type RetryCounter, sleep } from './transient.ts';
import type { WorkerFleet } from './workers.ts';

export type InjectedFault = { kind: FaultKind; before: number; atMs: number; tookMs: number; note: string };

/**
 * A write to the dim policy that changes nothing: its trigger drops the guard's stored dims, so the next
 * preflight computes them and sees the condition now, not up to `reuse_for` (5 s) later. The policy's
 * content — what the drift watch fingerprints — stays as it was.
 */
const TOUCH_DIM_POLICY = `UPDATE birth_admission_dim SET description = description WHERE dim = 'chaos_stop_condition'`;

/**
 * The chaos stop-condition (chaos/stop-condition.sql): raised, it is a non-zero soft BLOCK dim every
 * preflight sees (within the guard's reuse window); cleared, parked births may be retried.
 */
export class StopCondition {
  active = false;
  private clearTimer: NodeJS.Timeout | undefined;
  private clearing: Promise<void> | undefined;
  private waiters: Array<() => void> = [];

  constructor(private readonly admin: Pool, private readonly counter: RetryCounter) {}

  /** Raise it now and clear it `holdMs` later (a second raise meanwhile extends it). */
  async raise(holdMs: number, reason: string): Promise<void> {
    await persist(this.counter, 'raise the stop-condition', () => this.admin.query(
      `WITH raised AS (UPDATE chaos_stop_condition SET active = true, reason = $1, since = coalesce(since, now()) WHERE singleton RETURNING 1)
       ${TOUCH_DIM_POLICY}`, [reason]));
    this.active = true;
    clearTimeout(this.clearTimer);
    // The end of the run clears it too (and reports a failure); a timer that fires after that has nothing to do.
    this.clearTimer = setTimeout(() => void this.clear().catch(() => undefined), holdMs);
  }

  /** Clear it (idempotent); resolves once the database says so. */
  clear(): Promise<void> {
    clearTimeout(this.clearTimer);
    this.clearing ??= (async () => {
      await persist(this.counter, 'clear the stop-condition', () => this.admin.query(
        `WITH cleared AS (UPDATE chaos_stop_condition SET active = false, reason = NULL, since = NULL WHERE singleton RETURNING 1)
         ${TOUCH_DIM_POLICY}`));
      this.active = false;
      for (const w of this.waiters.splice(0)) w();
    })().finally(() => {
      this.clearing = undefined;
    });
    return this.clearing;
  }

  /** Resolves when the condition is (or becomes) clear. */
  whenClear(): Promise<void> {
    if (!this.active) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export type FaultContext = {
  stack: ChaosStack;
  fleet: WorkerFleet;
  /** Superuser pool on the run's database. */
  admin: Pool;
  database: string;
  stopCondition: StopCondition;
  counter: RetryCounter;
  /** Live choices (which worker dies): forked from the seed, never from the plan's stream. */
  rng: Prng;
  log: (line: string) => void;
  startedAt: number;
};

export class FaultInjector {
  readonly injected: InjectedFault[] = [];
  private chain: Promise<void> = Promise.resolve();
  private next = 0;
  private failure: Error | undefined;

  constructor(private readonly faults: readonly PlannedFault[], private readonly ctx: FaultContext) {}

  /**
   * Called before admission `index` starts (in index order): the faults planned before it are
   * injected one after another, each once the previous one is over. The admission starts right after
   * the last of them began (a restart is over by then; a stop-condition holds on).
   */
  before(index: number): Promise<void> {
    this.chain = this.chain.then(async () => {
      while (this.next < this.faults.length && this.faults[this.next]!.before <= index) {
        const f = this.faults[this.next++]!;
        await this.inject(f);
      }
    });
    return this.chain.then(() => {
      if (this.failure) throw this.failure;
    });
  }

  /** Inject what is left (a short run) and wait for the last fault to be over. */
  async finish(): Promise<void> {
    await this.before(Number.MAX_SAFE_INTEGER);
  }

  counts(): Record<FaultKind, number> {
    const c = Object.fromEntries(FaultKind.map((k) => [k, 0])) as Record<FaultKind, number>;
    for (const f of this.injected) c[f.kind] += 1;
    return c;
  }

  private async inject(f: PlannedFault): Promise<void> {
    const { ctx } = this;
    const t0 = Date.now();
    let note = '';
    try {
      switch (f.kind) {
        case 'worker-kill': {
          const { pid } = await ctx.fleet.killOne(ctx.rng);
          note = `killed worker ${pid}`;
          break;
        }
        case 'temporal-restart':
          await ctx.stack.engine.restart(f.holdMs);
          note = `down ${f.holdMs} ms`;
          break;
        case 'postgres-restart':
          await ctx.stack.restartPostgres(f.holdMs);
          note = `down ${f.holdMs} ms`;
          break;
        case 'backend-terminate':
          note = `${await this.terminateWorkerBackends()} backend(s) terminated`;
          break;
        case 'stop-condition':
          await ctx.stopCondition.raise(f.holdMs, `fault before admission ${f.before}`);
          note = `held ${f.holdMs} ms`;
          break;
      }
    } catch (err) {
      // A fault the harness could not inject (a server that would not come back) ends the run: what
      // follows would not be the run the seed describes.
      this.failure ??= new Error(`fault ${f.kind} before admission ${f.before} could not be injected: ${(err as Error).message}`, { cause: err });
      throw this.failure;
    }
    const tookMs = Date.now() - t0;
    this.injected.push({ kind: f.kind, before: f.before, atMs: t0 - ctx.startedAt, tookMs, note });
    ctx.log(`fault ${FAULT_LABELS[f.kind]} before admission ${f.before}: ${note} (${tookMs} ms)`);
  }

  /** Every backend of birthgate_worker in the run's database; tries for a moment to catch some in use. */
  private async terminateWorkerBackends(): Promise<number> {
    const { ctx } = this;
    let total = 0;
    for (let i = 0; i < 30 && total === 0; i++) {
      const { rows } = await persist(ctx.counter, 'pg_terminate_backend', () => ctx.admin.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(a.pid))::int AS n
           FROM pg_stat_activity a WHERE a.usename = 'birthgate_worker' AND a.datname = $1`, [ctx.database]));
      total += rows[0]!.n;
      if (total === 0) await sleep(100);
    }
    return total;
  }
}
