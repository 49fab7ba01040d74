// Development aid: start the harness's throwaway PostgreSQL 16 and Temporal dev server, write their
// environment to a file and keep them up until interrupted, so single test files can be run against
// them directly: `set -a; . <file>; set +a; node --import tsx --test test/x.test.ts`.
import fs from 'node:fs';
import { loadConfig } from '../config/index.ts';
import { startEphemeralStack } from '../stack/ephemeral.ts';

const out = process.argv[2] ?? '.birthgate/dev-stack.env';
const config = loadConfig();
const stack = await startEphemeralStack(config, (l) => process.stderr.write(`[dev-stack] ${l}\n`));
fs.writeFileSync(out, [
  'NODE_ENV=test',
  `BIRTHGATE_TEST_ADMIN_URL=${stack.adminUrl}`,
  `TEMPORAL_ADDRESS=${stack.temporalAddress}`,
  `TEMPORAL_NAMESPACE=${config.namespace}`,
  `BIRTHGATE_TEST_TEMPORAL_CLI=${stack.temporalCli}`,
  `BIRTHGATE_TEST_SCRATCH=${stack.scratch}`,
].join('\n') + '\n');
process.stderr.write(`[dev-stack] ready: ${out}\n`);
const stop = () => void stack.stop().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
