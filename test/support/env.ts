// What the test harness (scripts/test.ts) started for this run: a real PostgreSQL 16 cluster and a
// real Temporal dev server. Test files read them from the environment the harness sets.
import { z } from 'zod';

const TestEnvSchema = z.object({
  BIRTHGATE_TEST_ADMIN_URL: z.string().url(),
  TEMPORAL_ADDRESS: z.string().min(1),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  BIRTHGATE_TEST_TEMPORAL_CLI: z.string().min(1),
});

export type TestEnv = {
  /** Superuser URL of the test cluster's `postgres` database. */
  adminUrl: string;
  temporalAddress: string;
  namespace: string;
  temporalCli: string;
};

export function testEnv(): TestEnv {
  const parsed = TestEnvSchema.safeParse(process.env);
  if (!parsed.success) {
    throw new Error('test environment missing: run tests through `npm test` (scripts/test.ts starts PostgreSQL and Temporal)');
  }
  const e = parsed.data;
  return {
    adminUrl: e.BIRTHGATE_TEST_ADMIN_URL,
    temporalAddress: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    temporalCli: e.BIRTHGATE_TEST_TEMPORAL_CLI,
  };
}
