// The ledger's gauges, read by every worker process on a timer (BIRTHGATE_METRICS_INTERVAL, 15 s by
// default): permits by collection and state, the break-glass ones among them, stuck births by how long
// they have waited, and permits past their TTL. Read from the database rather than counted, because the
// ledger is the truth: a worker that restarts, or one of several, shows the same numbers.
//
// Cost: two statements per refresh as birthgate_worker over the permit views it may read (sql/roles:
// v_permit_summary, v_permit_stuck): one aggregate over birth_admission_permit (one row per admission
// ever; a seq scan of a few milliseconds at 100,000 permits) and a scan for REQUESTED or overdue live
// permits. One pooled connection for a moment; never overlapping (the next read is armed after this one ends).
import { z } from 'zod';
import type { Queryable } from '../db/pool.ts';
import { STUCK_AGE, type WorkerMetrics } from './metrics.ts';

const PermitState = ['REQUESTED', 'RESERVED', 'CONSUMED', 'FINALIZED', 'FAILED', 'EXPIRED', 'CANCELLED'] as const;

const SummaryRow = z.object({ collection_name: z.string(), state: z.string(), permits: z.coerce.number().int(), break_glass: z.coerce.number().int() });
const StuckRow = z.object({ state: z.string(), bucket: z.coerce.number().int().nullable(), n: z.coerce.number().int(), oldest: z.coerce.number() });

/** Upper bounds of the stuck-age buckets (s), for width_bucket: bucket i is STUCK_AGE[i]. */
const AGE_BOUNDS = STUCK_AGE.slice(0, -1).map((b) => b.below);

export type GaugeSnapshot = {
  permits: Map<string, number>; // `${collection}/${state}`
  breakGlassPermits: Map<string, number>;
  stuckBirths: Record<(typeof STUCK_AGE)[number]['label'], number>;
  stuckBirthOldestSeconds: number;
  overdue: { RESERVED: number; CONSUMED: number };
};

/** One read of the ledger: what the gauges are set to. */
export async function readLedgerGauges(db: Queryable): Promise<GaugeSnapshot> {
  const summary = z.array(SummaryRow).parse(
    (await db.query('SELECT collection_name, state, permits, break_glass FROM v_permit_summary')).rows,
  );
  // A REQUESTED permit is what a stuck birth holds while parked; its updated_at is when it was
  // requested (nothing moves it until an operator's retry or break-glass reserves it).
  const stuck = z.array(StuckRow).parse(
    (await db.query(
      `SELECT state, CASE WHEN state = 'REQUESTED' THEN width_bucket(waited, $1::float8[]) END AS bucket,
              count(*)::int AS n, coalesce(max(waited), 0)::float8 AS oldest
         FROM (SELECT state, extract(epoch FROM clock_timestamp() - updated_at)::float8 AS waited FROM v_permit_stuck) s
        GROUP BY 1, 2`,
      [AGE_BOUNDS],
    )).rows,
  );
  const snap: GaugeSnapshot = {
    permits: new Map(),
    breakGlassPermits: new Map(),
    stuckBirths: { under_1h: 0, '1h_to_1d': 0, '1d_to_7d': 0, over_7d: 0 },
    stuckBirthOldestSeconds: 0,
    overdue: { RESERVED: 0, CONSUMED: 0 },
  };
  for (const r of summary) {
    snap.permits.set(`${r.collection_name}/${r.state}`, r.permits);
    snap.breakGlassPermits.set(`${r.collection_name}/${r.state}`, r.break_glass);
  }
  for (const r of stuck) {
    if (r.state === 'REQUESTED' && r.bucket !== null) {
      snap.stuckBirths[STUCK_AGE[r.bucket]!.label] += r.n;
      snap.stuckBirthOldestSeconds = Math.max(snap.stuckBirthOldestSeconds, Math.floor(r.oldest));
    } else if (r.state === 'RESERVED' || r.state === 'CONSUMED') {
      snap.overdue[r.state] += r.n;
    }
  }
  return snap;
}

/**
 * Set every gauge from a snapshot. A label set the ledger no longer returns (the last REQUESTED permit
 * of a collection moved on) is set to 0, not left at its last value: every state of every collection
 * this process has seen is written each time.
 */
export function setLedgerGauges(m: WorkerMetrics, snap: GaugeSnapshot, seenCollections: Set<string>): void {
  for (const key of snap.permits.keys()) seenCollections.add(key.slice(0, key.lastIndexOf('/')));
  for (const collection of seenCollections) {
    for (const state of PermitState) {
      const key = `${collection}/${state}`;
      m.permits.set(snap.permits.get(key) ?? 0, { collection, state });
      m.breakGlassPermits.set(snap.breakGlassPermits.get(key) ?? 0, { collection, state });
    }
  }
  for (const { label } of STUCK_AGE) m.stuckBirths.set(snap.stuckBirths[label], { age: label });
  m.stuckBirthOldest.set(snap.stuckBirthOldestSeconds);
  m.permitsOverdue.set(snap.overdue.RESERVED, { state: 'RESERVED' });
  m.permitsOverdue.set(snap.overdue.CONSUMED, { state: 'CONSUMED' });
}

/** stop() arms no further read; one in flight ends by itself (the role's statement_timeout bounds it). */
export type GaugeRefresh = { stop(): void };

/**
 * Refresh the ledger gauges now and then every `everyMs` until stop(). A failed read (database away,
 * a packet without step 12's views) is counted and logged — once per distinct message, so a long outage
 * is one line, not one a refresh — and the gauges keep their last values.
 */
export function startLedgerGauges(o: {
  db: Queryable;
  metrics: WorkerMetrics;
  everyMs: number;
  warn: (message: string) => void;
}): GaugeRefresh {
  const seen = new Set<string>();
  let lastError: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = async () => {
    try {
      setLedgerGauges(o.metrics, await readLedgerGauges(o.db), seen);
      lastError = undefined;
    } catch (err) {
      if (stopped) return; // the pool closed under a read in flight: the worker is stopping
      o.metrics.gaugeRefreshFailures.add(1);
      const message = (err as Error).message;
      if (message !== lastError) o.warn(`birthgate worker: the ledger gauges could not be read (they keep their last values): ${message}`);
      lastError = message;
    }
  };
  const arm = () => {
    if (stopped) return;
    timer = setTimeout(() => void tick().finally(arm), o.everyMs);
    timer.unref();
  };
  void tick().finally(arm);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
