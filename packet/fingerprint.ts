// The catalog fingerprint (KB-3A66 §2 "entry hash == exit hash"): sql/probes/catalog_fingerprint.sql
// read as one jsonb, hashed canonically, and compared key by key so a mismatch names what moved.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Queryable } from '../db/pool.ts';
import { readSql } from '../db/sql-files.ts';

export type Fingerprint = {
  functions: Record<string, { oid: number; md5: string }>;
  constraints: Record<string, unknown>;
  indexes: Record<string, { def: string; valid: boolean }>;
  triggers: Record<string, { enabled: string; function: string; def: string }>;
  birth_trigger_bindings: number;
  relations: Record<string, unknown>;
  event_triggers: Record<string, unknown>;
  permit_table_present: boolean;
  row_counts: Record<string, number | null>;
  dot_tools_unborn: number | null;
  [key: string]: unknown;
};

export async function catalogFingerprint(q: Queryable): Promise<Fingerprint> {
  const r = await q.query<{ fingerprint: Fingerprint }>(readSql('probes/catalog_fingerprint.sql'));
  const fp = r.rows[0]?.fingerprint;
  if (!fp) throw new Error('catalog_fingerprint.sql returned no row');
  return fp;
}

/**
 * The runner's own read: the fingerprint counts rows of birth_registry and dot_tools, so behind
 * someone's ACCESS EXCLUSIVE lock it would wait forever. Bounded by lock_timeout, it fails clearly.
 */
export async function guardedFingerprint(pool: pg.Pool, lockTimeoutMs = 3000): Promise<Fingerprint> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN READ ONLY');
    await c.query(`SELECT set_config('lock_timeout', $1, true)`, [`${lockTimeoutMs}ms`]);
    const fp = await catalogFingerprint(c);
    await c.query('COMMIT');
    return fp;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/** JSON with object keys sorted at every level: equal states give byte-equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

export function fingerprintHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

export type FingerprintDiff = { path: string; before: unknown; after: unknown };

/** Leaf-level differences, e.g. `functions.fn_birth_gate().md5`; at most `limit` of them. */
export function diffFingerprints(before: unknown, after: unknown, limit = 50): FingerprintDiff[] {
  const out: FingerprintDiff[] = [];
  const walk = (a: unknown, b: unknown, p: string) => {
    if (out.length >= limit) return;
    const isObj = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
    if (isObj(a) && isObj(b)) {
      const ao = a as Record<string, unknown>;
      const bo = b as Record<string, unknown>;
      for (const k of [...new Set([...Object.keys(ao), ...Object.keys(bo)])].sort()) {
        walk(ao[k], bo[k], p ? `${p}.${k}` : k);
      }
      return;
    }
    if (canonicalJson(a) !== canonicalJson(b)) out.push({ path: p, before: a ?? null, after: b ?? null });
  };
  walk(before, after, '');
  return out;
}

export function formatDiff(diff: FingerprintDiff[]): string {
  return diff.map((d) => `${d.path}: ${JSON.stringify(d.before)} → ${JSON.stringify(d.after)}`).join('\n');
}

/** The KB-7D57 fn_hash_pre.txt trio (KB-2590 §4), for reports. */
export const KEY_FUNCTIONS = ['fn_birth_registry_auto()', 'fn_birth_gate()', 'fn_birth_registry_auto_id()'] as const;

export function keyFunctionHashes(fp: Fingerprint): Record<string, { oid: number; md5: string } | null> {
  return Object.fromEntries(KEY_FUNCTIONS.map((k) => [k, fp.functions[k] ?? null]));
}
