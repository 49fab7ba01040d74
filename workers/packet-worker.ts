// The packet worker: applyPacket and packetRollback (workers/packet-workflows.ts) with the packet's
// activities (activities/packet.ts), on the estate database's own packet task queue. It holds the
// estate's ADMIN pool, so it is never the long-running admission worker: the CLI commands that drive
// the packet (`birthgate apply | approve | rollback --to | packet retry | packet stop`) host one
// in-process while they wait, and stop it when they return. A packet waiting at its door needs no
// worker; the next command that drives it brings one.
//
// The workflow bundle is built once per source state and kept under BIRTHGATE_HOME/worker/ (keyed by
// the sha256 of every project file it was built from and the SDK version), so a CLI call does not pay
// webpack each time.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import type pg from 'pg';
import { createPacketActivities } from '../activities/packet.ts';
import { projectRoot } from '../config/index.ts';
import { type Estate, packetTaskQueue } from '../contracts/packet.ts';
import { quietBundlerLogger } from './admission-worker.ts';
import { sdkVersion } from './bundle.ts';

export const packetWorkflowsPath = fileURLToPath(new URL('./packet-workflows.ts', import.meta.url));

/** Activity slots: the packet is strictly sequential; two leave room for a retry beside a slow cancellation. */
export const PACKET_ACTIVITY_SLOTS = 2;
/** The admin pool a packet worker needs: per activity the lock session, the DDL session and the ledger writes. */
export const PACKET_POOL_SIZE = 6;

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** Project files in the bundle (from its inline source map). */
function bundleSources(code: string): string[] {
  const m = /\/\/# sourceMappingURL=data:application\/json[^,]*;base64,([A-Za-z0-9+/=]+)\s*$/.exec(code);
  if (!m) return [];
  const sources = (JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as { sources?: string[] }).sources ?? [];
  const files = new Set<string>();
  for (const s of sources) {
    const abs = s.startsWith('webpack://') ? s.slice('webpack://'.length) : s;
    if (!path.isAbsolute(abs)) continue;
    const rel = path.relative(projectRoot, abs);
    if (!rel.startsWith('..') && !rel.split(path.sep).includes('node_modules') && fs.existsSync(abs)) files.add(rel);
  }
  return [...files].sort();
}

function sourcesHash(files: string[]): string | undefined {
  const h = createHash('sha256').update(sdkVersion);
  for (const f of ['package-lock.json', ...files]) {
    try {
      h.update(f).update(fs.readFileSync(path.join(projectRoot, f)));
    } catch {
      return undefined;
    }
  }
  return h.digest('hex');
}

/**
 * The packet workflows' bundle: the cached one under `home` while every file it was built from hashes
 * the same, else built now (webpack, a few seconds) and cached. Without `home`, built in memory.
 */
export async function packetBundle(home?: string): Promise<WorkflowBundleOption> {
  const dir = home ? path.join(home, 'worker') : undefined;
  const codeFile = dir && path.join(dir, 'packet-bundle.js');
  const metaFile = dir && path.join(dir, 'packet-bundle.json');
  if (codeFile && metaFile) {
    try {
      const meta = JSON.parse(fs.readFileSync(metaFile, 'utf8')) as { files: string[]; sources: string; code: string };
      const code = fs.readFileSync(codeFile, 'utf8');
      if (sha256(code) === meta.code && sourcesHash(meta.files) === meta.sources) return { code };
    } catch {
      // no usable cache: build
    }
  }
  const { code } = await bundleWorkflowCode({ workflowsPath: packetWorkflowsPath, logger: quietBundlerLogger });
  if (dir && codeFile && metaFile) {
    const files = bundleSources(code);
    const sources = sourcesHash(files);
    if (sources) {
      try {
        fs.mkdirSync(dir, { recursive: true });
        const tmp = `${codeFile}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, code);
        fs.renameSync(tmp, codeFile);
        fs.writeFileSync(`${metaFile}.${process.pid}.tmp`, JSON.stringify({ files, sources, code: sha256(code) }));
        fs.renameSync(`${metaFile}.${process.pid}.tmp`, metaFile);
      } catch {
        // a read-only home: the bundle still runs from memory
      }
    }
  }
  return { code };
}

export type PacketWorkerOptions = {
  connection: NativeConnection;
  namespace: string;
  estate: Estate;
  /** The estate's admin pool, at least PACKET_POOL_SIZE connections. */
  pool: pg.Pool;
  databaseUrl?: string;
  reportDir?: string;
  workerPassword?: string;
  bundle: WorkflowBundleOption;
  identity?: string;
};

export type HostedPacketWorker = { worker: Worker; taskQueue: string; stop(): Promise<void> };

/** A packet worker running until stop() (which waits for its in-flight tasks to end, bounded by the SDK's grace time). */
export async function hostPacketWorker(o: PacketWorkerOptions): Promise<HostedPacketWorker> {
  const max = o.pool.options.max;
  if (max !== undefined && max < PACKET_POOL_SIZE) throw new Error(`the packet worker's pool needs ${PACKET_POOL_SIZE} connections, it has ${max}`);
  if (o.pool.listenerCount('error') === 0) o.pool.on('error', () => undefined); // an idle connection the server dropped
  const taskQueue = packetTaskQueue(o.estate);
  const worker = await Worker.create({
    connection: o.connection,
    namespace: o.namespace,
    taskQueue,
    workflowBundle: o.bundle,
    identity: o.identity ?? `birthgate-packet:${process.pid}@${os.hostname()}`,
    activities: createPacketActivities({ pool: o.pool, databaseUrl: o.databaseUrl, reportDir: o.reportDir, workerPassword: o.workerPassword }),
    maxConcurrentActivityTaskExecutions: PACKET_ACTIVITY_SLOTS,
    // A CLI call that returns while the packet waits stops its worker: a step in flight gets this
    // long to finish, then it is cancelled and Temporal retries it on the next packet worker.
    shutdownGraceTime: '10s',
  });
  const run = worker.run();
  let stopped: Promise<void> | undefined;
  return {
    worker,
    taskQueue,
    stop: () =>
      (stopped ??= (async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await run.catch(() => undefined);
      })()),
  };
}
