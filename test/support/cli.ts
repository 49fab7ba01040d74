// Run the real `birthgate` CLI as a child process.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../config/index.ts';

export type CliResult = { code: number; stdout: string; stderr: string };

/** `env` is the whole environment of the child (unset a variable by leaving it out). */
export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 300_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(projectRoot, 'bin', 'birthgate.mjs'), ...args],
      { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
