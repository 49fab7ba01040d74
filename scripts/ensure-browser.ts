// The browser the Web UI test drives (test/ui.test.ts): Debian's `chromium` at /usr/bin/chromium,
// through playwright-core, which brings no browser of its own (a browser download from outside the
// package registries cannot be fetched here). `npm test` runs this first (package.json "pretest"), so
// `.ci/run` on a clean machine installs the package before the servers start; the test calls it again
// for a single-file run. Installing needs root and apt-get; without them it fails loudly with the
// command to run — the UI test is never skipped for want of a browser.
// Usage: node --import tsx scripts/ensure-browser.ts
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = '/usr/bin/chromium';
const INSTALL = 'apt-get update && apt-get install -y --no-install-recommends chromium';

export class BrowserMissingError extends Error {
  override name = 'BrowserMissingError';
}

/** Chromium's `--version` line, or undefined when it is absent or does not run. */
export function chromiumVersion(executable = CHROMIUM): string | undefined {
  if (!fs.existsSync(executable)) return undefined;
  const r = spawnSync(executable, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  // Debian's wrapper script prints a shell warning on stderr on some machines; the version is on stdout.
  return r.status === 0 && /chromium/i.test(r.stdout) ? r.stdout.trim() : undefined;
}

/** Why this process cannot install the package, or undefined when it can. */
function cannotInstall(): string | undefined {
  if (process.platform !== 'linux') return `this is ${process.platform}, not Debian`;
  if (process.getuid?.() !== 0) return 'apt-get needs root and this process is not root';
  if (!['/usr/bin/apt-get', '/bin/apt-get'].some((p) => fs.existsSync(p))) return 'there is no apt-get (not a Debian system)';
  return undefined;
}

function apt(args: string[], log: (line: string) => void): Promise<void> {
  log(`apt-get ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    // Output to stderr: under the test runner stdout is the reporter's stream.
    const child = spawn('apt-get', args, {
      stdio: ['ignore', process.stderr, process.stderr],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new BrowserMissingError(`apt-get ${args[0]} failed (${signal ?? `exit ${code}`}); install it by hand: ${INSTALL}`)));
  });
}

/** The Chromium executable, installed from Debian's packages first when it is missing. */
export async function ensureBrowser(log: (line: string) => void = (l) => process.stderr.write(`[browser] ${l}\n`)): Promise<string> {
  if (chromiumVersion()) return CHROMIUM;
  const why = cannotInstall();
  if (why) throw new BrowserMissingError(`Chromium is missing at ${CHROMIUM} and cannot be installed here: ${why}. As root: ${INSTALL}`);
  log(`Chromium is missing at ${CHROMIUM}: installing Debian's package (once per machine)`);
  // Wait for another apt/dpkg run's lock instead of failing at once (a machine's own updates).
  await apt(['-o', 'DPkg::Lock::Timeout=300', 'update'], log);
  await apt(['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', '--no-install-recommends', 'chromium'], log);
  const version = chromiumVersion();
  if (!version) throw new BrowserMissingError(`apt-get installed chromium but ${CHROMIUM} does not run (\`${CHROMIUM} --version\`)`);
  log(`installed ${version}`);
  return CHROMIUM;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const executable = await ensureBrowser();
    process.stderr.write(`[browser] ${chromiumVersion(executable)} at ${executable}\n`);
  } catch (err) {
    process.stderr.write(`[browser] ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
