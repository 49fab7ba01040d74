// A fresh database per test file (or per test) on the harness's PostgreSQL 16 cluster.
import { createScratchDatabase, type ScratchDatabase } from '../../db/scratch.ts';
import { testEnv } from './env.ts';

export type FreshDatabase = ScratchDatabase;

export function freshDatabase(prefix: string): Promise<FreshDatabase> {
  return createScratchDatabase(testEnv().adminUrl, prefix);
}
