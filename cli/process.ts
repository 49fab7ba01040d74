// Small helpers the long-running verbs (`stack up`, `start`, the packet verbs) share.

/** Resolves with the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/** A connection URL fit to print: the password replaced by ***. */
export function redact(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/**
 * The Temporal runtime of a verb that hosts a worker in-process (`start`, the packet verbs): the SDK's
 * warnings and errors only, and Core's own log lines forwarded to that logger (stderr) — by default
 * Core prints them to stdout, into --json output. An embedding process that installed one keeps it.
 * Loaded on use: the SDK's native module is not needed for --help.
 */
export async function installCliRuntime(): Promise<void> {
  const { DefaultLogger, Runtime } = await import('@temporalio/worker');
  try {
    Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } } } });
  } catch {
    // already installed: keep it
  }
}
