// One applier at a time: a session advisory lock on a fixed key, held on its own connection for the
// whole run. pg_try_ (never wait): a second applier is told at once who holds it, instead of queueing
// behind a run that may take minutes and then applying onto a state it never checked.
import type pg from 'pg';
import { PacketError, PacketFailure } from './errors.ts';

/** The packet's advisory lock key, two int4 halves: 'BG' and KB-7D57. */
export const PACKET_LOCK = { classId: 0x4247, objId: 0x7d57 } as const;

export type PacketLock = { release(): Promise<void> };

/** The lock session, the step's DDL session and the ledger writes each need a connection. */
export const MIN_POOL_SIZE = 3;

export async function acquirePacketLock(pool: pg.Pool, purpose: string): Promise<PacketLock> {
  const max = (pool as unknown as { options?: { max?: number } }).options?.max;
  if (max !== undefined && max < MIN_POOL_SIZE) {
    throw new PacketError(PacketFailure.BadRequest, `${purpose} needs a pool of at least ${MIN_POOL_SIZE} connections (this one has ${max}): the lock session holds one for the whole run`);
  }
  const client = await pool.connect();
  try {
    const r = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
    if (!r.rows[0]?.ok) {
      const holder = await client.query<{ pid: number; application_name: string; backend_start: Date; client_addr: string | null }>(
        `SELECT a.pid, a.application_name, a.backend_start, a.client_addr::text AS client_addr
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2 AND l.granted`,
        [PACKET_LOCK.classId, PACKET_LOCK.objId],
      );
      const h = holder.rows[0];
      throw new PacketError(
        PacketFailure.Busy,
        `another applier holds the packet lock${h ? ` (pid ${h.pid}, ${h.application_name || 'unnamed'}, since ${h.backend_start.toISOString()})` : ''}; ${purpose} refused — wait for it to finish`,
      );
    }
  } catch (err) {
    client.release();
    throw err;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      try {
        await client.query('SELECT pg_advisory_unlock($1, $2)', [PACKET_LOCK.classId, PACKET_LOCK.objId]);
        client.release();
      } catch (err) {
        // A broken connection ends the session, and the session lock with it.
        client.release(err as Error);
      }
    },
  };
}
