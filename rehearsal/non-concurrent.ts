// CONCURRENTLY cannot run inside a transaction block, so the rehearsal runs the plain form of a
// CONCURRENTLY step inside its BEGIN … ROLLBACK (issue 3: "non-concurrent index build inside the
// transaction"). A step may ship its own rehearse.sql; otherwise the one keyword is removed from
// the statement, which builds the same index under a SHARE lock instead of SHARE UPDATE EXCLUSIVE.
import type { PacketStep } from '../packet/steps.ts';

export function rehearsalSql(step: PacketStep): string {
  if (!step.meta.concurrently) return step.up;
  if (step.rehearse) return step.rehearse;
  const code = step.up.split('\n').filter((l) => !/^\s*--/.test(l)).join('\n');
  const plain = code.replace(/\bCONCURRENTLY\b\s*/gi, '');
  if (plain === code) throw new Error(`step ${step.step} is marked concurrently but its up.sql has no CONCURRENTLY`);
  return plain;
}

/** The promotion of a concurrently built index (KB-7D57 step 3, ADD CONSTRAINT … USING INDEX). */
export const isPromotion = (step: PacketStep) => /\bUSING\s+INDEX\b/i.test(step.up.replace(/--[^\n]*/g, ''));

/**
 * The lock a composite step holds on its table for its window (PostgreSQL's table-level lock modes):
 * the plain build SHARE (the apply's CONCURRENTLY build: SHARE UPDATE EXCLUSIVE, writers go on), the
 * promotion ACCESS EXCLUSIVE. Named, not read from pg_locks: on the clone, built in the same
 * transaction, every table is already held in ACCESS EXCLUSIVE since its CREATE, so a step's own
 * request adds nothing pg_locks could show. The window's length is what the clone measures.
 */
export function stepLock(step: PacketStep, kind: 'plain' | 'index-build' | 'promotion'): string[] {
  if (kind === 'plain') return [];
  const code = rehearsalSql(step).replace(/--[^\n]*/g, '');
  const m = kind === 'index-build'
    ? /\bON\s+(?:ONLY\s+)?([\w."]+)/i.exec(code)
    : /\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w."]+)/i.exec(code);
  const table = (m?.[1] ?? '?').replace(/^public\./, '').replace(/"/g, '');
  return [`${table}:${kind === 'index-build' ? 'ShareLock' : 'AccessExclusiveLock'}`];
}
