// The worker process without the CLI: `node --import tsx workers/main.ts` (temporal-compose.yml, the
// crash tests). The same process as `birthgate worker` (workers/serve.ts): birthgate_worker's URL from
// BIRTHGATE_WORKER_DATABASE_URL or derived from the stack, the prebuilt production bundle when it
// matches the code, graceful drain on SIGINT/SIGTERM (exit 0 drained, 1 drain timed out or failed).
// BIRTHGATE_TEST_CRASH_AT (honoured only when NODE_ENV=test) SIGKILLs it at a named point.
import { untilSignal } from '../cli/process.ts';
import { loadConfig } from '../config/index.ts';
import { resolveEndpoints } from '../stack/endpoints.ts';
import { crashHooks, serveAdmissionWorker } from './serve.ts';

async function main(): Promise<number> {
  const config = loadConfig();
  const result = await serveAdmissionWorker({
    config,
    endpoints: () => resolveEndpoints(config),
    stop: untilSignal(),
    log: (line) => process.stderr.write(`${line}\n`),
    hooks: crashHooks(process.env),
  });
  if (!result.closed) process.exit(result.code);
  return result.code;
}

process.exitCode = await main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  return 1;
});
