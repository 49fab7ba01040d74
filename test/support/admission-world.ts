// A database ready for admissions: the estate as found (sql/baseline), the apply packet through its
// last step, and the birthgate_worker role the worker connects as. Shared by the admission tests and
// bench/admission.ts.
import type pg from 'pg';
import { installBaseline } from '../../fixtures/baseline.ts';
import { workerUrlFrom } from '../../stack/endpoints.ts';
import { applyStepsSql, packetSteps } from './packet-sql.ts';

// birthgate_worker is cluster-wide: every test file must give it the same password, or one file's
// role refresh breaks another file's worker connections.
import { installWorkerRole, workerPassword as WORKER_PASSWORD } from './packet-world.ts';
export { WORKER_PASSWORD };

export type AdmissionWorld = {
  /** birthgate_worker's URL for the same database: what the worker's pool uses. */
  workerUrl: string;
};

export async function prepareAdmissionWorld(pool: pg.Pool, superuserUrl: string): Promise<AdmissionWorld> {
  await installBaseline(pool);
  const last = Math.max(...packetSteps().map((s) => s.meta.step));
  await applyStepsSql(pool, last);
  await installWorkerRole(pool, WORKER_PASSWORD);
  return { workerUrl: workerUrlFrom(superuserUrl, WORKER_PASSWORD) };
}
