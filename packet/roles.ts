// issue 3 §4: the birthgate_worker login role (sql/roles/birthgate_worker.sql), created after the
// packet with its password passed as a parameter — set_config(…, true) in the same transaction, so it
// is never part of any SQL text, log line or ledger row.
import type pg from 'pg';
import { z } from 'zod';
import { readSql } from '../db/sql-files.ts';
import { DdlOptionsSchema, runDdl, type DdlOptions } from './ddl.ts';

export const WorkerPassword = z.string().min(8, 'the worker password must be at least 8 characters').max(200);

export async function installWorkerRole(pool: pg.Pool, password: string, ddl: Partial<DdlOptions> = {}): Promise<void> {
  await runDdl(pool, readSql('roles/birthgate_worker.sql'), false, DdlOptionsSchema.parse(ddl), {
    settings: { 'birthgate.worker_password': WorkerPassword.parse(password) },
  });
}

export async function dropWorkerRole(pool: pg.Pool, ddl: Partial<DdlOptions> = {}): Promise<void> {
  await runDdl(pool, readSql('roles/birthgate_worker_drop.sql'), false, DdlOptionsSchema.parse(ddl));
}
