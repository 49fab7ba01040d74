// Connection helpers. Every query elsewhere is parameterised; this module only opens and closes.
import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Client = pg.Client;
export type Queryable = Pick<pg.Pool | pg.PoolClient | pg.Client, 'query'>;

/** How long a caller waits for a connection: a new one's connect, or a free one when the pool is full. */
export const POOL_CONNECT_TIMEOUT_MS = 5_000;
/** A connection idle (not in a transaction) this long is closed; the pool opens another when needed. */
export const POOL_IDLE_TIMEOUT_MS = 10_000;
/** TCP keepalive starts probing after this much silence, so a dead peer or a dropped NAT entry is found. */
export const POOL_KEEPALIVE_DELAY_MS = 10_000;

/**
 * A pool that cannot hang its callers (issue 8 §4):
 * - `connectionTimeoutMillis`: a connect that does not complete, or a wait for a free connection while
 *   every one is busy (twenty hung statements), fails after 5 s — inside an activity's 10 s
 *   start-to-close — with "timeout exceeded when trying to connect" (a retryable DATABASE_UNAVAILABLE);
 * - TCP keepalive: a connection whose peer vanished (server host lost, NAT dropped it) is detected
 *   instead of waiting forever on a socket that will never answer;
 * - idle connections are closed after 10 s and an error on one (the server terminated it: an admin,
 *   a restart, `idle_session_timeout`) only removes it — pg-pool re-emits it on the pool, and an
 *   unhandled 'error' event would kill the process. A session the server ended for
 *   `idle_in_transaction_session_timeout` is checked out at the time: its owner's next query fails,
 *   and `inTransaction` releases it as broken so it is never handed out again.
 * The statement, lock and idle-in-transaction bounds themselves are the role's (sql/roles), not the pool's:
 * this pool also serves the packet runner, whose index builds run for minutes.
 */
export function createPool(connectionString: string, opts: { max?: number; applicationName?: string } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'birthgate',
    connectionTimeoutMillis: POOL_CONNECT_TIMEOUT_MS,
    idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: POOL_KEEPALIVE_DELAY_MS,
  });
  // The failed idle client is already removed from the pool; the next checkout connects afresh.
  pool.on('error', () => undefined);
  return pool;
}

export async function withClient<T>(connectionString: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString,
    application_name: 'birthgate',
    connectionTimeoutMillis: POOL_CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: POOL_KEEPALIVE_DELAY_MS,
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Run fn inside BEGIN … COMMIT (or ROLLBACK on error) on one pooled client. */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A connection that cannot even roll back (terminated by the server, socket gone) is dropped,
    // never returned to the pool still inside a transaction.
    await client.query('ROLLBACK').catch((e: unknown) => {
      broken = e instanceof Error ? e : new Error(String(e));
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/** Replace the database name of a URL (for per-test databases and the admin `postgres` db). */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The database a URL names (its path, percent-decoded): the inverse of withDatabase. */
export function databaseOf(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));
}
