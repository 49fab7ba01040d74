// The Temporal runtime of the worker process, installed once before the first connection: its logger
// (observability/logger.ts: JSON lines, Core's own warnings forwarded into the same stream) and, when a
// metrics port is configured, the Prometheus endpoint that exports both the SDK's metrics (temporal_*:
// workflow and activity task latencies, slots, pollers, sticky cache …) and birthgate's own (observability/
// metrics.ts), which are created from the same runtime meter.
import { IllegalStateError, type LogLevel } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import { type LogFormat, LineLogger } from './logger.ts';
import { METRIC, SCHEDULE_LAG_BUCKETS_MS } from './metrics.ts';

export type MetricsEndpoint = { host: string; port: number };

export type InstalledRuntime =
  /** Installed here; `metricsUrl` is where Prometheus scrapes, or null when no port was configured. */
  | { installed: true; metricsUrl: string | null }
  /** The embedding process installed one first (its logger and exporter stay; ours are not in effect). */
  | { installed: false; metricsUrl: null };

const bindAddress = ({ host, port }: MetricsEndpoint) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/**
 * Install the runtime with birthgate's logger and, with `metrics`, the Prometheus exporter. Throws when
 * the endpoint cannot be bound (the port is taken): a worker asked for metrics does not run without them.
 */
export function installWorkerRuntime(o: { format: LogFormat; level?: LogLevel; write: (line: string) => void; metrics: MetricsEndpoint | null }): InstalledRuntime {
  try {
    Runtime.install({
      logger: new LineLogger(o.format, o.write, o.level ?? 'INFO'),
      // Signals are the worker's (workers/serve.ts drains on them), not the runtime's instant shutdown.
      shutdownSignals: [],
      telemetryOptions: {
        logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
        ...(o.metrics
          ? { metrics: { prometheus: { bindAddress: bindAddress(o.metrics), histogramBucketOverrides: { [METRIC.scheduleLag]: SCHEDULE_LAG_BUCKETS_MS } } } }
          : {}),
      },
    });
  } catch (err) {
    if (err instanceof IllegalStateError) return { installed: false, metricsUrl: null };
    throw new Error(`cannot serve metrics on ${o.metrics ? bindAddress(o.metrics) : '(none)'}: ${(err as Error).message} — set BIRTHGATE_METRICS_PORT (or --metrics-port) to a free port`);
  }
  return { installed: true, metricsUrl: o.metrics ? `http://${bindAddress(o.metrics)}/metrics` : null };
}
