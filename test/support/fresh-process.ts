// A fresh Node process with tsx, run in the project root: for checks that need a module cache (and
// frozen or unfrozen modules) of their own.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { projectRoot } from '../../config/index.ts';

/** `node --import tsx …args`, waited for; stdout and stderr as text. */
export function runFresh(args: string[], timeoutMs = 30_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, ['--import', 'tsx', ...args], { cwd: projectRoot, encoding: 'utf8', timeout: timeoutMs });
}

/** An ES module script, one line per entry, in a fresh process. */
export function runFreshScript(lines: string[]): SpawnSyncReturns<string> {
  return runFresh(['--input-type=module', '-e', lines.join('\n')]);
}
