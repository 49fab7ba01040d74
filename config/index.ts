// Configuration in one place: read once from the environment, validated with zod.
// Every variable here is documented in the README.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const port = z.coerce.number().int().min(1).max(65535);

const EnvSchema = z.object({
  DATABASE_URL: z.string().url().optional(),
  BIRTHGATE_WORKER_DATABASE_URL: z.string().url().optional(),
  BIRTHGATE_OPERATOR_DATABASE_URL: z.string().url().optional(),
  TEMPORAL_ADDRESS: z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port').optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_CLI: z.string().min(1).optional(),
  TEMPORAL_UI_URL: z.string().url().optional(),
  BIRTHGATE_HOME: z.string().min(1).default(path.join(projectRoot, '.birthgate')),
  BIRTHGATE_PG_PORT: port.default(54316),
  BIRTHGATE_TEMPORAL_PORT: port.default(7233),
  BIRTHGATE_UI_PORT: port.default(8233),
  BIRTHGATE_TASK_QUEUE: z.string().min(1).default('birthgate-admission'),
  BIRTHGATE_PG_PASSWORD: z.string().min(8).default('birthgate-local'),
  BIRTHGATE_WORKER_PASSWORD: z.string().min(8).default('birthgate-worker-local'),
  BIRTHGATE_DB_NAME: z.string().regex(/^[a-z_][a-z0-9_]*$/).default('directus'),
});

export type Config = {
  /** Superuser URL; undefined means "start the embedded server". */
  externalDatabaseUrl: string | undefined;
  externalTemporalAddress: string | undefined;
  namespace: string;
  temporalCli: string | undefined;
  temporalUiUrl: string | undefined;
  home: string;
  pgPort: number;
  temporalPort: number;
  uiPort: number;
  taskQueue: string;
  pgPassword: string;
  workerPassword: string;
  workerDatabaseUrl: string | undefined;
  /** An operator's login (a member of birthgate_operator) for break-glass; default: the superuser URL. */
  operatorDatabaseUrl: string | undefined;
  dbName: string;
};

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    externalDatabaseUrl: e.DATABASE_URL,
    externalTemporalAddress: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    temporalCli: e.TEMPORAL_CLI,
    temporalUiUrl: e.TEMPORAL_UI_URL,
    home: path.resolve(e.BIRTHGATE_HOME),
    pgPort: e.BIRTHGATE_PG_PORT,
    temporalPort: e.BIRTHGATE_TEMPORAL_PORT,
    uiPort: e.BIRTHGATE_UI_PORT,
    taskQueue: e.BIRTHGATE_TASK_QUEUE,
    pgPassword: e.BIRTHGATE_PG_PASSWORD,
    workerPassword: e.BIRTHGATE_WORKER_PASSWORD,
    workerDatabaseUrl: e.BIRTHGATE_WORKER_DATABASE_URL,
    operatorDatabaseUrl: e.BIRTHGATE_OPERATOR_DATABASE_URL,
    dbName: e.BIRTHGATE_DB_NAME,
  };
}
