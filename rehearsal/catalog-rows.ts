// "Byte for byte" (issue 3): the raw pg_catalog rows of our objects, hashed per catalog
// (sql/runner/catalog_rows.sql), compared before and after the rehearsal's ROLLBACK.
import type pg from 'pg';
import { readSql } from '../db/sql-files.ts';

export type CatalogRows = Record<string, { rows: number; md5: string }>;

export async function catalogRows(q: Pick<pg.Pool, 'query'>): Promise<CatalogRows> {
  const r = await q.query<{ catalog: string; rows: number; md5: string }>(readSql('runner/catalog_rows.sql'));
  return Object.fromEntries(r.rows.map((x) => [x.catalog, { rows: x.rows, md5: x.md5 }]));
}

/** Catalogs whose rows differ (empty = byte-for-byte equal). */
export function catalogRowsDiff(a: CatalogRows, b: CatalogRows): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().filter((k) => a[k]?.md5 !== b[k]?.md5);
}
