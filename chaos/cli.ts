// The `npm run chaos` command (chaos/main.ts runs it): arguments, the run, the report and the exit
// code — 0 when every invariant held, 1 on a breach or a failed run, 2 on bad arguments. While a run is
// up, an interrupt (SIGINT, SIGTERM) or a crash of the harness stops everything it started first.
import fs from 'node:fs';
import { ChaosUsageError, parseChaosArgs, USAGE } from './args.ts';
import { formatReport } from './report.ts';
import { runChaos } from './run.ts';

/** The whole command, resolving to its exit code; only an interrupt or a crash exits the process (once everything is stopped). */
export async function chaosMain(argv: string[]): Promise<number> {
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
  // Whatever breaks inside the harness, the servers and workers it started are stopped before it exits.
  const crashed = (err: unknown) => {
    process.stderr.write(`chaos: the harness failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    void (emergencyStop?.() ?? Promise.resolve()).finally(() => process.exit(1));
  };
  process.on('uncaughtException', crashed);
  process.on('unhandledRejection', crashed);
  const report = await runChaos({ ...opts, hooks: { started: (stop) => (emergencyStop = stop) } });
  const text = formatReport(report);
  process.stdout.write(`${text}\n`);
  if (opts.report) {
    fs.writeFileSync(`${opts.report}.md`, `\`\`\`\n${text}\n\`\`\`\n`);
    fs.writeFileSync(`${opts.report}.json`, `${JSON.stringify(report, null, 2)}\n`);
  }
  return report.ok ? 0 : 1;
}

