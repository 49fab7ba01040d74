// Building the real Temporal server (stack/temporal-server.ts) from the Go module proxy:
// `go install go.temporal.io/server/cmd/server@v1.32.2` and `…/cmd/tools/sql@v1.32.2`
// (temporal-sql-tool) into <BIRTHGATE_HOME>/tools/temporal-server/v1.32.2/ (git-ignored), with the
// module's PostgreSQL schemas copied beside them and a build.json, then reused by every later start.
// The module needs Go ≥ 1.26.10; any Go ≥ 1.21 on PATH fetches that toolchain itself (GOTOOLCHAIN,
// through the module proxy). ~5 minutes cold on 2 cores; seconds with a warm Go build cache.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';

const run = promisify(execFile);

/** The server we build and test; temporal-compose.yml names the same version (test/compose.test.ts). */
export const TEMPORAL_SERVER_VERSION = '1.32.2';
/** The toolchain the module's go.mod requires; a Go ≥ 1.21 on PATH downloads it as a module. */
export const GO_TOOLCHAIN = 'go1.26.10';
const MODULE = 'go.temporal.io/server';

/** Under the module's `schema/` (and the admin-tools image's /etc/temporal/schema/). */
export const SCHEMA_DIRS = { persistence: 'postgresql/v12/temporal/versioned', visibility: 'postgresql/v12/visibility/versioned' } as const;

export type TemporalServerBuild = {
  dir: string;
  server: string;
  sqlTool: string;
  /** The module's `schema/` folder, copied beside the binaries. */
  schemaRoot: string;
  /** Whether this call built it (false: an earlier build was reused). */
  built: boolean;
};

const BuildManifestSchema = z.object({ version: z.string(), goToolchain: z.string(), builtAt: z.string(), seconds: z.number() });

export function temporalServerBuildDir(home: string): string {
  return path.join(home, 'tools', 'temporal-server', `v${TEMPORAL_SERVER_VERSION}`);
}

function buildIn(dir: string): Omit<TemporalServerBuild, 'built'> {
  return { dir, server: path.join(dir, 'bin', 'temporal-server'), sqlTool: path.join(dir, 'bin', 'temporal-sql-tool'), schemaRoot: path.join(dir, 'schema') };
}

/** A complete earlier build: its manifest names this version, and its sql tool runs and says so. */
async function usableBuild(dir: string): Promise<boolean> {
  const b = buildIn(dir);
  try {
    const manifest = BuildManifestSchema.parse(JSON.parse(fs.readFileSync(path.join(dir, 'build.json'), 'utf8')));
    if (manifest.version !== TEMPORAL_SERVER_VERSION || !fs.existsSync(b.server)) return false;
    if (!Object.values(SCHEMA_DIRS).every((d) => fs.existsSync(path.join(b.schemaRoot, d)))) return false;
    const { stdout } = await run(b.sqlTool, ['--version'], { timeout: 20_000 });
    return stdout.includes(TEMPORAL_SERVER_VERSION);
  } catch {
    return false;
  }
}

/**
 * The server and temporal-sql-tool of TEMPORAL_SERVER_VERSION, built into <home>/tools/ unless an
 * earlier build is there. Built in a temporary folder beside the target and moved in with one rename,
 * so a concurrent builder (the real-server test and a bench at once) finds a complete build or none.
 */
export async function ensureTemporalServerBuild(home: string, log: (line: string) => void = () => undefined, opts: { timeoutMs?: number } = {}): Promise<TemporalServerBuild> {
  const target = temporalServerBuildDir(home);
  if (await usableBuild(target)) return { ...buildIn(target), built: false };
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.build-v${TEMPORAL_SERVER_VERSION}-`));
  const started = Date.now();
  const env = { ...process.env, GOBIN: path.join(tmp, 'gobin'), GOTOOLCHAIN: GO_TOOLCHAIN, GOFLAGS: '' };
  try {
    log(`building Temporal server ${TEMPORAL_SERVER_VERSION} from the Go module proxy (${GO_TOOLCHAIN}; ~5 min cold, seconds with a warm Go build cache) …`);
    try {
      await run('go', ['install', `${MODULE}/cmd/server@v${TEMPORAL_SERVER_VERSION}`, `${MODULE}/cmd/tools/sql@v${TEMPORAL_SERVER_VERSION}`], {
        env, timeout: opts.timeoutMs ?? 900_000, maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: string; killed?: boolean };
      if (e.code === 'ENOENT') throw new Error(`building Temporal server ${TEMPORAL_SERVER_VERSION} needs Go on PATH (any Go ≥ 1.21 fetches ${GO_TOOLCHAIN} itself)`);
      if (e.killed) throw new Error(`building Temporal server ${TEMPORAL_SERVER_VERSION} did not finish within ${Math.round((opts.timeoutMs ?? 900_000) / 1000)} s`);
      throw new Error(`go install ${MODULE}@v${TEMPORAL_SERVER_VERSION} failed: ${(e.stderr || e.message).trim().split('\n').slice(-5).join(' | ')}`);
    }
    // The schemas are the module's own: the same files the admin-tools image ships.
    const { stdout } = await run('go', ['mod', 'download', '-json', `${MODULE}@v${TEMPORAL_SERVER_VERSION}`], { env, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });
    const moduleDir = z.object({ Dir: z.string() }).parse(JSON.parse(stdout)).Dir;
    const b = buildIn(tmp);
    fs.mkdirSync(path.dirname(b.server), { recursive: true });
    fs.renameSync(path.join(tmp, 'gobin', 'server'), b.server);
    fs.renameSync(path.join(tmp, 'gobin', 'sql'), b.sqlTool);
    fs.cpSync(path.join(moduleDir, 'schema', 'postgresql'), path.join(b.schemaRoot, 'postgresql'), { recursive: true });
    writable(b.schemaRoot); // the module cache is read-only, and so would the copy be
    fs.rmSync(path.join(tmp, 'gobin'), { recursive: true, force: true });
    const seconds = Math.round((Date.now() - started) / 1000);
    fs.writeFileSync(path.join(tmp, 'build.json'), `${JSON.stringify({ version: TEMPORAL_SERVER_VERSION, goToolchain: GO_TOOLCHAIN, builtAt: new Date().toISOString(), seconds }, null, 2)}\n`);
    if (fs.existsSync(target)) {
      if (await usableBuild(target)) return { ...buildIn(target), built: false }; // a concurrent build won
      fs.rmSync(target, { recursive: true, force: true });
    }
    try {
      fs.renameSync(tmp, target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && (await usableBuild(target)))) throw err;
    }
    log(`Temporal server ${TEMPORAL_SERVER_VERSION} built in ${seconds} s: ${target}`);
    return { ...buildIn(target), built: true };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function writable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const f of fs.readdirSync(dir, { withFileTypes: true })) {
    if (f.isDirectory()) writable(path.join(dir, f.name));
    else fs.chmodSync(path.join(dir, f.name), 0o644);
  }
}
