// A database ready for admissions: the estate as found (sql/baseline), the apply packet through its
// last step, and the birthgate_worker role the worker connects as. Shared by the admission tests and
// bench/admission.ts.
import type pg from 'pg';
import { listSql, readSql } from '../../db/sql-files.ts';
import { workerUrlFrom } from '../../stack/endpoints.ts';
import { applyStepsSql, packetSteps } from './packet-sql.ts';

// birthgate_worker is cluster-wide: every test file must give it the same password, or one file's
// role refresh breaks another file's worker connections.
export { workerPassword as WORKER_PASSWORD } from './packet-world.ts';
import { workerPassword as WORKER_PASSWORD } from './packet-world.ts';

export type AdmissionWorld = {
  /** birthgate_worker's URL for the same database: what the worker's pool uses. */
  workerUrl: string;
};

export async function prepareAdmissionWorld(pool: pg.Pool, superuserUrl: string): Promise<AdmissionWorld> {
  for (const file of listSql('baseline')) await pool.query(readSql(file));
  const last = Math.max(...packetSteps().map((s) => s.meta.step));
  await applyStepsSql(pool, last);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SELECT set_config('birthgate.worker_password', $1, true)`, [WORKER_PASSWORD]);
    await client.query(readSql('roles/birthgate_worker.sql'));
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  return { workerUrl: workerUrlFrom(superuserUrl, WORKER_PASSWORD) };
}
