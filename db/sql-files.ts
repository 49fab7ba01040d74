// SQL lives in its own files under sql/; this module finds and reads them, nothing more.
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/index.ts';

export const sqlRoot = path.join(projectRoot, 'sql');

export function readSql(relativePath: string): string {
  return fs.readFileSync(path.join(sqlRoot, relativePath), 'utf8');
}

/** The .sql files of a folder under sql/, in lexical (= apply) order. */
export function listSql(relativeDir: string): string[] {
  const dir = path.join(sqlRoot, relativeDir);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => path.join(relativeDir, f));
}
