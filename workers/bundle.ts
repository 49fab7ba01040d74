// The production workflow bundle, built once (`birthgate worker build`) and identified by a build id,
// so the worker runs the code that was built (and tested), not whatever webpack makes of the tree at
// start-up. README "Versioning" says what the build id is for and what it is not.
//
// Build id: `<package version>+<git short commit>`, `-dirty` appended when the work tree has changes
// (tracked or untracked, git-ignored files aside); without git (no binary, no .git, e.g. a container
// with the sources mounted), `<package version>+bundle.<first 12 hex of the bundle's sha256>`.
//
// On disk, under BIRTHGATE_HOME (git-ignored): worker/workflow-bundle.js and worker/workflow-bundle.json
// (the manifest). The manifest lists every project source file webpack put into the bundle (from its
// source map) with its sha256, plus package.json and package-lock.json: a prebuilt bundle is used only
// when those still hash the same, the SDK version is the same, and — with git — the build id of the
// tree now equals the one it was built for. A `-dirty` id alone cannot say whether the changes are the
// same ones; the source hashes can.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleWorkflowCode, type WorkflowBundleOption } from '@temporalio/worker';
import { z } from 'zod';
import { projectRoot } from '../config/index.ts';
import { PRELOADED_MODULES, productionWorkflowsPath, quietBundlerLogger } from './admission-worker.ts';

/** Workflows that exist for the benchmark only; the production bundle must never register them. */
export const BENCHMARK_ONLY_WORKFLOWS = ['dotBirthAdmitLocal'] as const;
/** The packet's workflows (workers/packet-workflows.ts): they need the admin connection, so never in the admission worker's bundle. */
export const PACKET_WORKFLOWS = ['applyPacket', 'packetRollback'] as const;

export const sdkVersion: string = (createRequire(import.meta.url)('@temporalio/worker/package.json') as { version: string }).version;
const packageVersion: string = (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;

const ManifestSchema = z.object({
  buildId: z.string().min(1),
  buildIdSource: z.enum(['git', 'bundle-hash']),
  version: z.string(),
  commit: z.string().nullable(),
  dirty: z.boolean(),
  sdkVersion: z.string(),
  entry: z.string(),
  workflows: z.array(z.string()),
  bundleSha256: z.string(),
  /** Project files (relative to the project root) the bundle was built from, with their sha256. */
  sources: z.record(z.string(), z.string()),
  builtAt: z.string(),
});
export type BundleManifest = z.infer<typeof ManifestSchema>;

export type BundleFiles = { dir: string; code: string; manifest: string };

export function bundleFiles(home: string): BundleFiles {
  const dir = path.join(home, 'worker');
  return { dir, code: path.join(dir, 'workflow-bundle.js'), manifest: path.join(dir, 'workflow-bundle.json') };
}

export type GitBuildId = { buildId: string; commit: string; dirty: boolean };

function git(args: string[]): string | undefined {
  const r = spawnSync('git', args, { cwd: projectRoot, encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return r.status === 0 ? r.stdout : undefined;
}

/** The build id of the tree as it is now, from git; undefined when git (or the repository) is unavailable. */
export function gitBuildId(): GitBuildId | undefined {
  // Only a repository whose top level is this project: a copy nested in some other repository is not it.
  const top = git(['rev-parse', '--show-toplevel'])?.trim();
  if (!top || path.resolve(top) !== fs.realpathSync(projectRoot)) return undefined;
  const commit = git(['rev-parse', '--short', 'HEAD'])?.trim();
  const status = git(['status', '--porcelain']);
  if (!commit || status === undefined) return undefined;
  const dirty = status.trim() !== '';
  return { buildId: `${packageVersion}+${commit}${dirty ? '-dirty' : ''}`, commit, dirty };
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

function hashFile(rel: string): string | undefined {
  try {
    return sha256(fs.readFileSync(path.join(projectRoot, rel)));
  } catch {
    return undefined;
  }
}

/** The `sources` of the bundle's inline source map (webpack puts it at the end of the code). */
function inlineSourceMapSources(code: string): string[] {
  const m = /\/\/# sourceMappingURL=data:application\/json[^,]*;base64,([A-Za-z0-9+/=]+)\s*$/.exec(code);
  if (!m) return [];
  try {
    return (JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as { sources?: string[] }).sources ?? [];
  } catch {
    return [];
  }
}

/** Project files in the bundle (from its source map), plus the package manifests that pin the rest. */
function bundleSources(code: string): Record<string, string> {
  const files = new Set<string>(['package.json', 'package-lock.json']);
  const sources = inlineSourceMapSources(code);
  if (sources.length === 0) throw new Error('the workflow bundle has no inline source map: cannot tell which files it was built from');
  for (const s of sources) {
    const abs = s.startsWith('webpack://') ? s.slice('webpack://'.length) : s;
    if (!path.isAbsolute(abs)) continue;
    const rel = path.relative(projectRoot, abs);
    if (rel.startsWith('..') || rel.split(path.sep).includes('node_modules')) continue;
    if (fs.existsSync(abs)) files.add(rel.split(path.sep).join('/'));
  }
  const out: Record<string, string> = {};
  for (const f of [...files].sort()) {
    const h = hashFile(f);
    if (h) out[f] = h;
  }
  return out;
}

/** The workflow types the production entry point exports (what the worker will register). */
export async function productionWorkflowTypes(): Promise<string[]> {
  const m = (await import(pathToFileURL(productionWorkflowsPath).href)) as Record<string, unknown>;
  return Object.entries(m)
    .filter(([, v]) => typeof v === 'function')
    .map(([k]) => k)
    .sort();
}

export type BuiltBundle = { code: string; manifest: BundleManifest };

/** Bundle the production workflows (webpack: a few seconds) and describe the result. Writes nothing. */
export async function buildProductionBundle(): Promise<BuiltBundle> {
  const workflows = await productionWorkflowTypes();
  const leaked = workflows.filter((w) => ([...BENCHMARK_ONLY_WORKFLOWS, ...PACKET_WORKFLOWS] as readonly string[]).includes(w));
  if (leaked.length) throw new Error(`the production workflows entry exports benchmark-only or packet workflow(s): ${leaked.join(', ')}`);
  const git = gitBuildId();
  const { code } = await bundleWorkflowCode({ workflowsPath: productionWorkflowsPath, logger: quietBundlerLogger, preloadModules: [...PRELOADED_MODULES] });
  const bundleSha256 = sha256(code);
  const manifest: BundleManifest = {
    buildId: git?.buildId ?? `${packageVersion}+bundle.${bundleSha256.slice(0, 12)}`,
    buildIdSource: git ? 'git' : 'bundle-hash',
    version: packageVersion,
    commit: git?.commit ?? null,
    dirty: git?.dirty ?? false,
    sdkVersion,
    entry: path.relative(projectRoot, productionWorkflowsPath).split(path.sep).join('/'),
    workflows,
    bundleSha256,
    sources: bundleSources(code),
    builtAt: new Date().toISOString(),
  };
  return { code, manifest };
}

function writeAtomically(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** `birthgate worker build`: build the production bundle and write it with its manifest under BIRTHGATE_HOME. */
export async function writeProductionBundle(home: string): Promise<BuiltBundle & { files: BundleFiles }> {
  const built = await buildProductionBundle();
  const files = bundleFiles(home);
  fs.mkdirSync(files.dir, { recursive: true });
  // The code first, the manifest last: a manifest on disk always describes the code beside it.
  fs.rmSync(files.manifest, { force: true });
  writeAtomically(files.code, built.code);
  writeAtomically(files.manifest, `${JSON.stringify(built.manifest, null, 2)}\n`);
  return { ...built, files };
}

export function readManifest(home: string): BundleManifest | undefined {
  try {
    return ManifestSchema.parse(JSON.parse(fs.readFileSync(bundleFiles(home).manifest, 'utf8')));
  } catch {
    return undefined;
  }
}

/** Why the prebuilt bundle does not fit the code as it is now; undefined when it does. */
export function prebuiltMismatch(home: string, manifest: BundleManifest | undefined, current: GitBuildId | undefined): string | undefined {
  if (!manifest) return `no prebuilt bundle in ${bundleFiles(home).dir}`;
  const code = bundleFiles(home).code;
  let onDisk: string;
  try {
    onDisk = sha256(fs.readFileSync(code));
  } catch {
    return `${code} is missing`;
  }
  if (onDisk !== manifest.bundleSha256) return `${code} is not the bundle its manifest describes`;
  if (manifest.sdkVersion !== sdkVersion) return `it was built with @temporalio/worker ${manifest.sdkVersion}, this is ${sdkVersion}`;
  if (current && manifest.buildId !== current.buildId) return `it is build ${manifest.buildId}, the code is now ${current.buildId}`;
  const changed = Object.entries(manifest.sources).filter(([f, h]) => hashFile(f) !== h).map(([f]) => f);
  if (changed.length) return `changed since it was built: ${changed.slice(0, 5).join(', ')}${changed.length > 5 ? ` (+${changed.length - 5})` : ''}`;
  return undefined;
}

export type WorkerBundle = {
  bundle: WorkflowBundleOption;
  buildId: string;
  workflows: string[];
  /** Where it came from: the prebuilt file, or built in memory now (and why). */
  origin: { kind: 'prebuilt'; path: string } | { kind: 'built'; reason: string; ms: number };
};

/** The bundle `birthgate worker` runs: the prebuilt one when it matches the code, else one built now (not written). */
export async function productionBundle(home: string): Promise<WorkerBundle> {
  const manifest = readManifest(home);
  const mismatch = prebuiltMismatch(home, manifest, gitBuildId());
  if (manifest && !mismatch) {
    const { code } = bundleFiles(home);
    return { bundle: { codePath: code }, buildId: manifest.buildId, workflows: manifest.workflows, origin: { kind: 'prebuilt', path: code } };
  }
  const started = Date.now();
  const built = await buildProductionBundle();
  return {
    bundle: { code: built.code },
    buildId: built.manifest.buildId,
    workflows: built.manifest.workflows,
    origin: { kind: 'built', reason: mismatch ?? 'unknown', ms: Date.now() - started },
  };
}
