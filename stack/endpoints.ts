// Where the running stack is: the embedded stack's state file, or DATABASE_URL / TEMPORAL_ADDRESS.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/index.ts';

export const StackStateSchema = z.object({
  supervisorPid: z.number().int(),
  startedAt: z.string(),
  ready: z.boolean(),
  databaseUrl: z.string(),
  temporalAddress: z.string(),
  namespace: z.string(),
  uiUrl: z.string().optional(),
  postgres: z.object({ pid: z.number().int().optional(), dataDir: z.string(), port: z.number().int() }).optional(),
  temporal: z.object({ pid: z.number().int().optional(), port: z.number().int(), uiPort: z.number().int().optional(), dbFile: z.string().optional() }).optional(),
  /** Which Temporal the stack runs (`stack up --temporal`); absent in state files from before it existed: dev. */
  engine: z.enum(['dev', 'server', 'external']).optional(),
});
export type StackState = z.infer<typeof StackStateSchema>;

export type StackEndpoints = {
  /** A superuser URL, for operators and the packet runner. */
  databaseUrl: string;
  /** The least-privilege role the worker connects as. */
  workerDatabaseUrl: string;
  /** The operator's login for break-glass (a member of birthgate_operator; default: databaseUrl). */
  operatorDatabaseUrl: string;
  temporalAddress: string;
  namespace: string;
  uiUrl: string | undefined;
};

export function stateFile(config: Config): string {
  return path.join(config.home, 'stack.json');
}

export function readState(config: Config): StackState | undefined {
  try {
    return StackStateSchema.parse(JSON.parse(fs.readFileSync(stateFile(config), 'utf8')));
  } catch {
    return undefined;
  }
}

export function writeState(config: Config, state: StackState): void {
  fs.mkdirSync(config.home, { recursive: true });
  const tmp = `${stateFile(config)}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(tmp, stateFile(config));
}

export function removeState(config: Config): void {
  fs.rmSync(stateFile(config), { force: true });
}

export function workerUrlFrom(databaseUrl: string, password: string): string {
  const u = new URL(databaseUrl);
  u.username = 'birthgate_worker';
  u.password = password;
  return u.toString();
}

export async function resolveEndpoints(config: Config): Promise<StackEndpoints> {
  const state = readState(config);
  const databaseUrl = config.externalDatabaseUrl ?? (state?.ready ? state.databaseUrl : undefined);
  const temporalAddress = config.externalTemporalAddress ?? (state?.ready ? state.temporalAddress : undefined);
  if (!databaseUrl || !temporalAddress) {
    throw new Error('the stack is not running: start it with `birthgate stack up --detach` (or set DATABASE_URL and TEMPORAL_ADDRESS)');
  }
  return {
    databaseUrl,
    workerDatabaseUrl: config.workerDatabaseUrl ?? workerUrlFrom(databaseUrl, config.workerPassword),
    operatorDatabaseUrl: config.operatorDatabaseUrl ?? databaseUrl,
    temporalAddress,
    namespace: config.namespace,
    uiUrl: config.temporalUiUrl ?? state?.uiUrl,
  };
}
