// `probeEntryState`: the checks of KB-2590 §1–§9, run live (sql/probes/*.sql, one JSON document per
// section, parsed by probes/schema.ts). Read-only by construction: everything runs in a transaction
// (or, inside a caller's transaction, a savepoint) that is rolled back, so the temp-table check of
// §1 leaves nothing behind and a rehearsal can probe its own uncommitted state.
import pg from 'pg';
import type { Queryable } from '../db/pool.ts';
import { readSql } from '../db/sql-files.ts';
import { parseMarker } from '../fixtures/world-state.ts';
import {
  BirthRegistrySchema,
  ChannelSchema,
  CompositeSchema,
  DdlGuardSchema,
  EntryStateSchema,
  FamiliesSchema,
  FingerprintSchema,
  GovernanceSchema,
  InformationUnitSchema,
  SafetyNetSchema,
  type EntryState,
} from './schema.ts';

export { formatEntryState } from './format.ts';
export type { EntryState } from './schema.ts';

export class NoEstateError extends Error {
  override name = 'NoEstateError';
}

export async function probeEntryState(q: Queryable): Promise<EntryState> {
  if (q instanceof pg.Pool) {
    const client = await q.connect();
    try {
      return await inRolledBackScope(client, () => probe(client));
    } finally {
      client.release();
    }
  }
  return inRolledBackScope(q, () => probe(q));
}

async function inRolledBackScope<T>(q: Queryable, fn: () => Promise<T>): Promise<T> {
  let own = false;
  try {
    await q.query('SAVEPOINT bg_entry_probe');
  } catch (err) {
    // 25P01: not in a transaction block — open our own.
    if ((err as { code?: string }).code !== '25P01') throw err;
    await q.query('BEGIN');
    own = true;
  }
  let failed = false;
  try {
    return await fn();
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    const undo = own ? q.query('ROLLBACK') : q.query('ROLLBACK TO SAVEPOINT bg_entry_probe; RELEASE SAVEPOINT bg_entry_probe');
    await (failed ? undo.catch(() => undefined) : undo);
  }
}

async function section(q: Queryable, file: string): Promise<unknown> {
  const { rows } = await q.query<{ doc: unknown }>(readSql(`probes/${file}`));
  return rows[0]?.doc;
}

/** KB-2590 §1: "temp create/drop in rollback OK". */
async function tempCreateDropInRollback(q: Queryable): Promise<boolean> {
  await q.query('SAVEPOINT bg_probe_temp');
  try {
    await q.query('CREATE TEMP TABLE bg_probe_temp (probe integer)');
    await q.query('DROP TABLE bg_probe_temp');
    return true;
  } catch {
    return false;
  } finally {
    await q.query('ROLLBACK TO SAVEPOINT bg_probe_temp');
  }
}

async function probe(q: Queryable): Promise<EntryState> {
  const anchor = await q.query<{ present: boolean; marker: string | null }>(
    "SELECT to_regclass('birth_registry') IS NOT NULL AS present, obj_description(to_regclass('birth_registry'), 'pg_class') AS marker",
  );
  if (!anchor.rows[0]?.present) {
    throw new NoEstateError('no estate in this database: birth_registry is missing (load one with `birthgate world load --scale test`)');
  }
  const channel = ChannelSchema.omit({ tempCreateDropInRollback: true }).parse(await section(q, '01-channel.sql'));
  return EntryStateSchema.parse({
    probedAt: new Date().toISOString(),
    worldScale: parseMarker(anchor.rows[0].marker)?.birthgate_world.scale ?? null,
    channel: { ...channel, tempCreateDropInRollback: await tempCreateDropInRollback(q) },
    birthRegistry: BirthRegistrySchema.parse(await section(q, '02-birth-registry.sql')),
    composite: CompositeSchema.parse(await section(q, '03-composite.sql')),
    fingerprints: FingerprintSchema.array().parse(await section(q, '04-fingerprints.sql')),
    families: FamiliesSchema.parse(await section(q, '05-dot-tools.sql')),
    informationUnit: InformationUnitSchema.parse(await section(q, '06-information-unit.sql')),
    governance: GovernanceSchema.parse(await section(q, '07-governance.sql')),
    safetyNet: SafetyNetSchema.parse(await section(q, '08-safety-net.sql')),
    ddlGuard: DdlGuardSchema.parse(await section(q, '09-ddl-guard.sql')),
  });
}
