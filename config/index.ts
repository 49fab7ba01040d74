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
  BIRTHGATE_TEMPORAL_ENGINE: z.enum(['dev', 'server']).default('dev'),
  BIRTHGATE_TEMPORAL_DB_PASSWORD: z.string().min(8).default('temporal-local'),
  // The worker's Prometheus endpoint: off unless a port is given (several workers, and the tests, share
  // hosts); loopback unless a host is given (the labels name collections and states, not codes).
  BIRTHGATE_METRICS_PORT: z.preprocess((v) => (v === '' ? undefined : v), port.optional()),
  BIRTHGATE_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  BIRTHGATE_METRICS_INTERVAL: z.coerce.number().int().min(1).max(3600).default(15),
  BIRTHGATE_LOG_FORMAT: z.enum(['json', 'text']).default('json'),
  // INFO: every outcome, park and failure; DEBUG adds each admission's progress stages (five lines per
  // clean admission, which at full rate cost the worker more than the admission's own commands).
  BIRTHGATE_LOG_LEVEL: z.preprocess((v) => (typeof v === 'string' ? v.toUpperCase() : v), z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR'])).default('INFO'),
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
  /** The Temporal the stack starts when TEMPORAL_ADDRESS is unset: the CLI's dev server, or a real server on PostgreSQL. */
  temporalEngine: 'dev' | 'server';
  /** Password of the `temporal` login that owns the real server's databases. */
  temporalDbPassword: string;
  /** The worker's Prometheus port; undefined: no metrics endpoint. */
  metricsPort: number | undefined;
  metricsHost: string;
  /** How often each worker re-reads the ledger gauges (observability/gauges.ts). */
  metricsIntervalMs: number;
  /** The worker's log lines: one JSON object per line, or text for a terminal. */
  logFormat: 'json' | 'text';
  logLevel: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
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
    temporalEngine: e.BIRTHGATE_TEMPORAL_ENGINE,
    temporalDbPassword: e.BIRTHGATE_TEMPORAL_DB_PASSWORD,
    metricsPort: e.BIRTHGATE_METRICS_PORT,
    metricsHost: e.BIRTHGATE_METRICS_HOST,
    metricsIntervalMs: e.BIRTHGATE_METRICS_INTERVAL * 1000,
    logFormat: e.BIRTHGATE_LOG_FORMAT,
    logLevel: e.BIRTHGATE_LOG_LEVEL,
  };
}
