// Last resort for the dev server (issue 2): where pip cannot reach PyPI but the internet is open, the
// TypeScript SDK's own cached download of the Temporal CLI runs it. Same flags as our own start:
// persisted db file, Web UI, the search attributes. The SDK owns that child process; the supervisor
// stops it through teardown().
import fs from 'node:fs';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { BirthCollection, BirthStage, BreakGlass, EntityCode, PermitId } from '../contracts/search-attributes.ts';
import { devServerDynamicConfigArgs, ensureSearchAttributes } from './temporal.ts';

export type SdkDevServer = { address: string; uiUrl: string; stop(): Promise<void> };

export async function startSdkDownloadedDevServer(o: { port: number; uiPort: number; namespace: string; dbFile: string }): Promise<SdkDevServer> {
  fs.mkdirSync(path.dirname(o.dbFile), { recursive: true });
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'cached-download' },
      ip: '127.0.0.1',
      port: o.port,
      ui: true,
      uiPort: o.uiPort,
      namespace: o.namespace,
      dbFilename: o.dbFile,
      searchAttributes: [BirthStage, EntityCode, BirthCollection, PermitId, BreakGlass],
      extraArgs: devServerDynamicConfigArgs(), // same dynamic config as startTemporalDevServer
    },
  });
  const address = `127.0.0.1:${o.port}`;
  await ensureSearchAttributes(address, o.namespace);
  return { address, uiUrl: `http://127.0.0.1:${o.uiPort}`, stop: () => env.teardown() };
}
