// The test harness: start a real PostgreSQL 16 and a real Temporal dev server (or use DATABASE_URL /
// TEMPORAL_ADDRESS), run node's test runner over test/*.test.ts, then stop everything it started.
// Usage: npm test [-- test/some.test.ts …]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, projectRoot } from '../config/index.ts';
import { startEphemeralStack, type EphemeralStack } from '../stack/ephemeral.ts';

const config = loadConfig();
const log = (line: string) => process.stderr.write(`[harness] ${line}\n`);

function testFiles(argv: string[]): string[] {
  if (argv.length > 0) return argv;
  return fs
    .readdirSync(path.join(projectRoot, 'test'))
    .filter((f) => f.endsWith('.test.ts'))
    // The real-server test first: on a machine without its cached build it builds Temporal (~5 min
    // cold), which then overlaps the rest of the suite instead of trailing it.
    .sort((a, b) => Number(b === 'real-server.test.ts') - Number(a === 'real-server.test.ts') || (a < b ? -1 : a > b ? 1 : 0))
    .map((f) => path.join('test', f));
}

async function main(): Promise<number> {
  const files = testFiles(process.argv.slice(2));
  let stack: EphemeralStack | undefined;
  const onSignal = () => void (stack?.stop() ?? Promise.resolve()).then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    stack = await startEphemeralStack(config, log);
    const env = {
      ...process.env,
      NODE_ENV: 'test',
      BIRTHGATE_TEST_ADMIN_URL: stack.adminUrl,
      TEMPORAL_ADDRESS: stack.temporalAddress,
      TEMPORAL_NAMESPACE: config.namespace,
      BIRTHGATE_TEST_TEMPORAL_CLI: stack.temporalCli,
      BIRTHGATE_TEST_SCRATCH: stack.scratch,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=600000', ...files], {
      stdio: 'inherit',
      env,
      cwd: projectRoot,
    });
    return await new Promise<number>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))));
  } finally {
    await stack?.stop();
  }
}

process.exitCode = await main().catch((err: Error) => {
  log(`failed: ${err.message}`);
  return 1;
});
