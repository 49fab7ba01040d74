// What a caller sees while the harness breaks things on purpose: Temporal's frontend gone (gRPC
// UNAVAILABLE) while it restarts, PostgreSQL refusing connections while it restarts, a connection
// terminated under a query. Such an error is transient: the harness's own calls (admit, an operator's
// decision, a check) are retried until they get an answer, and each retry is counted — "retries
// observed" in the report. Anything else is a real answer and goes back to the caller.
//
// A call to a Temporal server that went away may wait for it for ever (the gRPC channel waits to
// reconnect): every Temporal call of the harness is bounded (`boundedCalls`), and a call that ran out
// of time is one more transient failure, tried again. The bound is a gRPC deadline, not an abort
// signal: the client's own retry of a failed attempt (its gRPC retry interceptor) starts a new call that
// keeps the deadline but is not cancelled by the signal — a long-poll started during a restart would
// then outlive its abort.
import type { Client } from '@temporalio/client';

/**
 * gRPC codes a restart produces: UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, UNKNOWN (a reset stream),
 * INTERNAL (RST_STREAM) — and CANCELLED, which here only the harness's own bound on a call raises.
 */
const TRANSIENT_GRPC = new Set([14, 4, 10, 2, 13, 1]);
/** SQLSTATEs of a server going away or not there yet: admin shutdown, crash shutdown, cannot connect now, connection failures. */
const TRANSIENT_SQLSTATE = /^(57P01|57P02|57P03|08\w{3})$/;
const TRANSIENT_MESSAGE = /ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|Connection terminated|connection terminated|terminating connection|timeout exceeded when trying to connect|socket hang up|the database system is (starting up|shutting down)|Client has encountered a connection error|Connection is closed|UNAVAILABLE|No connection established|DEADLINE_EXCEEDED|Call cancelled|Failed to connect|connect ECONN/;

export function isTransient(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const o = e as { code?: unknown; message?: unknown };
    if (typeof o.code === 'number' && TRANSIENT_GRPC.has(o.code)) return true;
    if (typeof o.code === 'string' && (TRANSIENT_SQLSTATE.test(o.code) || /^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT)$/.test(o.code))) return true;
    if (typeof o.message === 'string' && TRANSIENT_MESSAGE.test(o.message)) return true;
  }
  return false;
}

export type RetryCounter = { retries: number };

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Run `fn` until it answers: a transient error is retried (backoff 100 ms doubling to 2 s, counted in
 * `counter`) until `deadlineMs` has passed; any other error is thrown at once.
 */
export async function persist<T>(counter: RetryCounter, what: string, fn: () => Promise<T>, deadlineMs = 180_000, log?: (line: string) => void): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (let pause = 100, attempt = 1; ; pause = Math.min(pause * 2, 2_000), attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransient(err)) throw err;
      if (Date.now() > deadline) throw new Error(`${what}: still failing after ${Math.round(deadlineMs / 1000)} s: ${describe(err)}`, { cause: err });
      counter.retries += 1;
      if (log && (attempt === 5 || attempt % 20 === 0)) log(`${what}: attempt ${attempt} failed: ${describe(err)}`);
      await sleep(pause);
    }
  }
}

/** An error with its causes, one line. */
export function describe(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) parts.push((e as Error).message ?? String(e));
  return parts.join(' ← ').replace(/\s+/g, ' ').slice(0, 300);
}

/** A harness call: bounded in time (every Temporal call inside `fn` has the deadline), retried while transient. */
export type Call = <T>(what: string, fn: () => Promise<T>, timeoutMs?: number) => Promise<T>;

export function boundedCalls(client: Client, counter: RetryCounter, log?: (line: string) => void): Call {
  return <T>(what: string, fn: () => Promise<T>, timeoutMs = 60_000) =>
    persist(counter, what, () => client.withDeadline(Date.now() + timeoutMs, fn), 180_000, log);
}

/** Wait for `p` at most `ms`; a stop step that hangs must not hold the rest of the teardown. */
export function atMost(ms: number, p: Promise<unknown>): Promise<void> {
  return Promise.race([p.then(() => undefined, () => undefined), sleep(ms)]);
}
