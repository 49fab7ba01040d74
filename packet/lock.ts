// One applier at a time: a session advisory lock on a fixed key, held on its own connection for the
// whole run. pg_try_ (never wait): a second applier is told at once who holds it, instead of queueing
// behind a run that may take minutes and then applying onto a state it never checked.
//
// The packet as a workflow (issue 9 item 1): a session lock cannot span Temporal activities, so each
// packet activity holds it for its own duration only, and the packet lease (packet/ledger.ts,
// `birthgate_ledger.packet_lease`) names the workflow run that owns the packet in between. Checked here,
// under the lock, for every entry point: by default (the direct runner, the rehearsal, a step run by
// hand) any lease refuses; a workflow's activity passes its own holder and is refused unless it holds
// the lease; the workflow's first and last activities ('inspect') examine the lease themselves.
import type pg from 'pg';
import { PacketError, PacketFailure } from './errors.ts';
import { type LeaseHolder, type PacketLease, readLease, sameHolder } from './ledger.ts';

/** The packet's advisory lock key, two int4 halves: 'BG' and KB-7D57. */
export const PACKET_LOCK = { classId: 0x4247, objId: 0x7d57 } as const;

export type PacketLock = {
  release(): Promise<void>;
  /** The lease as read under the lock (undefined: nobody holds it). */
  lease: PacketLease | undefined;
};

/**
 * What the lease must say for the lock to be granted: undefined — nobody holds it (the direct runner);
 * a holder — exactly that workflow run holds it (a packet workflow's step); 'inspect' — anything, the
 * caller decides (the workflow's first activity takes or clears it, its last releases it).
 */
export type LeaseRule = undefined | LeaseHolder | 'inspect';

function leaseRefusal(lease: PacketLease | undefined, rule: LeaseRule, purpose: string): string | undefined {
  if (rule === 'inspect') return undefined;
  if (rule === undefined) {
    return lease
      ? `the packet workflow ${lease.workflowId} (run ${lease.workflowRun}) holds the packet lease for its ${lease.kind} since ${lease.acquiredAt}; ${purpose} refused — ` +
          'drive the packet through it (`birthgate apply`, `birthgate approve`, `birthgate rollback --to N`); if that workflow is gone, the next `birthgate apply` clears its lease'
      : undefined;
  }
  if (!lease) return `${purpose} refused: workflow ${rule.workflowId} (run ${rule.workflowRun}) does not hold the packet lease (nobody does)`;
  if (!sameHolder(lease, rule)) return `${purpose} refused: the packet lease is held by workflow ${lease.workflowId} (run ${lease.workflowRun}), not ${rule.workflowId} (run ${rule.workflowRun})`;
  return undefined;
}

/** The lock session, the step's DDL session and the ledger writes each need a connection. */
export const MIN_POOL_SIZE = 3;

export async function acquirePacketLock(pool: pg.Pool, purpose: string, opts: { lease?: LeaseRule } = {}): Promise<PacketLock> {
  const max = (pool as unknown as { options?: { max?: number } }).options?.max;
  if (max !== undefined && max < MIN_POOL_SIZE) {
    throw new PacketError(PacketFailure.BadRequest, `${purpose} needs a pool of at least ${MIN_POOL_SIZE} connections (this one has ${max}): the lock session holds one for the whole run`);
  }
  const client = await pool.connect();
  let lease: PacketLease | undefined;
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
    try {
      lease = await readLease(client);
      const refusal = leaseRefusal(lease, opts.lease, purpose);
      if (refusal) throw new PacketError(PacketFailure.Busy, refusal);
    } catch (err) {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [PACKET_LOCK.classId, PACKET_LOCK.objId]).catch(() => undefined);
      throw err;
    }
  } catch (err) {
    client.release();
    throw err;
  }
  let released = false;
  return {
    lease,
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
