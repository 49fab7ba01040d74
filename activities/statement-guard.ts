// SQL an activity may wait on (issue 8 §4): the governed insert and the preflight. While the
// statement runs, the activity heartbeats (a remote activity learns that Temporal cancelled it, or gave
// up on it, only from a heartbeat's answer), and the backend running the statement is cancelled —
// pg_cancel_backend(pid) from another pooled connection — as soon as
//   - the activity is cancelled (the workflow's scope was cancelled, the worker shuts down, the server
//     timed the attempt out, the run closed: Context.cancellationSignal), or
//   - the attempt's start-to-close is about to run out (DEADLINE_MARGIN_MS before it): Temporal is
//     about to give up on this attempt and retry it or run the compensations, so whatever the statement
//     would still commit must not.
// The statement then fails with 57014 and its transaction rolls back; a guarded transaction that was
// tripped between statements never sends its COMMIT. The role's own bounds (sql/roles: lock_timeout,
// statement_timeout, idle_in_transaction_session_timeout) hold even when this process cannot act.
//
// Cancelling by pid is safe only while the session is ours: the client stays checked out until every
// cancel request has returned, and a cancel that reaches a session between statements is ignored by
// PostgreSQL (it cancels only a running statement).
//
// Outside an activity (scripts, tests calling the functions directly) the guard does nothing.
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { FailureType } from '../contracts/admission.ts';
import type { Pool, PoolClient } from '../db/pool.ts';

/** Heartbeat this often while guarded SQL runs (the worker throttles what it sends to the server). */
export const HEARTBEAT_EVERY_MS = 1_000;
/** Cancel the backend this long before the attempt's start-to-close runs out (a tenth of it when that is shorter). */
export const DEADLINE_MARGIN_MS = 1_000;

type Trip = 'cancelled' | 'deadline';

/** SQLSTATE 57014: the statement was cancelled (pg_cancel_backend, or statement_timeout). */
const QUERY_CANCELED = '57014';

function currentActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined; // not inside an activity
  }
}

// One pg client is one server session for its whole life (a direct connection), so its backend pid
// is read once, with SELECT pg_backend_pid() on that very client, and remembered with it.
const backendPids = new WeakMap<PoolClient, number>();

async function backendPid(client: PoolClient): Promise<number> {
  let pid = backendPids.get(client);
  if (pid === undefined) {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    pid = rows[0]!.pid;
    backendPids.set(client, pid);
  }
  return pid;
}

/** Watches one activity attempt while its SQL runs; cancels the attached backend when it trips. */
class StatementWatch {
  private pid: number | undefined;
  private trip: Trip | undefined;
  private cancelRequest: Promise<void> | undefined;
  private tripFailure: Error | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly onAbort = () => this.tripWith('cancelled');

  constructor(
    private readonly pool: Pool,
    private readonly what: string,
    private readonly ctx: Context | undefined,
    private readonly startedAt: number,
  ) {
    if (!ctx) return;
    if (ctx.cancellationSignal.aborted) {
      this.trip = 'cancelled';
      return;
    }
    ctx.cancellationSignal.addEventListener('abort', this.onAbort, { once: true });
    // A local activity cannot heartbeat (the worker holds no activity task for it; the SDK core answers
    // UnknownActivity): its cancellation and its timeouts come from the worker that runs it.
    if (!ctx.info.isLocal) {
      const heartbeat = setInterval(() => ctx.heartbeat({ waitingOn: what, elapsedMs: Date.now() - startedAt }), HEARTBEAT_EVERY_MS);
      heartbeat.unref();
      this.timers.push(heartbeat);
    }
    const budget = ctx.info.startToCloseTimeoutMs;
    if (Number.isFinite(budget) && budget > 0) {
      const margin = Math.min(DEADLINE_MARGIN_MS, budget / 10);
      const deadline = setTimeout(() => this.tripWith('deadline'), Math.max(0, startedAt + budget - margin - Date.now()));
      deadline.unref();
      this.timers.push(deadline);
    }
  }

  get tripped(): boolean {
    return this.trip !== undefined;
  }

  /** From now on a trip cancels this backend. */
  attach(pid: number): void {
    this.pid = pid;
  }

  /** Detach from the backend; resolves once no cancel request is in flight, so the session may be released. */
  async detach(): Promise<void> {
    this.pid = undefined;
    await this.cancelRequest;
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.ctx?.cancellationSignal.removeEventListener('abort', this.onAbort);
  }

  /** What the attempt fails with once tripped (cause: what the statement failed with, if it ran). One object per attempt. */
  failure(cause?: unknown): Error {
    if (this.tripFailure) return this.tripFailure;
    const err = cause instanceof Error ? cause : undefined;
    if (this.trip === 'cancelled') {
      const reason: unknown = this.ctx?.cancellationSignal.reason;
      this.tripFailure = reason instanceof CancelledFailure ? reason : new CancelledFailure(`${this.what}: activity cancelled`, undefined, err);
    } else {
      const budget = this.ctx?.info.startToCloseTimeoutMs ?? 0;
      this.tripFailure = ApplicationFailure.create({
        type: FailureType.DATABASE_UNAVAILABLE,
        message: `${this.what}: statement cancelled ${Date.now() - this.startedAt} ms into the attempt, before its start-to-close (${budget} ms) ran out; rolled back`,
        cause: err,
      });
    }
    return this.tripFailure;
  }

  /** Did this guard end the statement? (it tripped, and the statement failed as cancelled, or never ran to COMMIT) */
  ended(err: unknown): boolean {
    return this.trip !== undefined && (err === this.tripFailure || (err as { code?: string } | null)?.code === QUERY_CANCELED);
  }

  private tripWith(trip: Trip): void {
    if (this.trip) return;
    this.trip = trip;
    if (this.pid === undefined) return; // not running SQL yet: the caller checks `tripped` before it does
    // Another pooled connection asks the server to cancel this backend's statement. Its own failure
    // (the pool is exhausted, the server is gone) leaves the role's timeouts to end the statement.
    this.cancelRequest = this.pool
      .query('SELECT pg_cancel_backend($1::integer)', [this.pid])
      .then(() => undefined, () => undefined);
  }
}

export type GuardOptions = {
  /** When the activity started (Date.now() at its entry): the attempt's start-to-close counts from there. */
  startedAt: number;
  /** BEGIN … COMMIT around fn (ROLLBACK on any failure; never COMMIT once tripped). */
  transaction?: boolean;
};

/**
 * Run fn on one pooled client under the guard described at the top of this file. Whatever fails
 * leaves as thrown; a tripped guard turns the failure into a CancelledFailure (the activity was
 * cancelled) or a retryable DATABASE_UNAVAILABLE (the attempt's time ran out).
 */
export async function guardedSql<T>(pool: Pool, what: string, opts: GuardOptions, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const watch = new StatementWatch(pool, what, currentActivity(), opts.startedAt);
  try {
    if (watch.tripped) throw watch.failure();
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      watch.attach(await backendPid(client));
      if (watch.tripped) throw watch.failure();
      if (opts.transaction) await client.query('BEGIN');
      try {
        const result = await fn(client);
        if (opts.transaction) {
          if (watch.tripped) throw watch.failure(); // tripped between statements: roll back instead
          await client.query('COMMIT');
        }
        return result;
      } catch (err) {
        if (opts.transaction) {
          // A connection that cannot even roll back (the server ended the session) is dropped.
          await client.query('ROLLBACK').catch((e: unknown) => {
            broken = e instanceof Error ? e : new Error(String(e));
          });
        }
        throw watch.ended(err) ? watch.failure(err) : err;
      }
    } finally {
      await watch.detach();
      client.release(broken);
    }
  } finally {
    watch.stop();
  }
}
