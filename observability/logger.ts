// The worker's log lines: one JSON object per line (the default; what a log shipper reads), or the
// same fields as text for a person at a terminal (BIRTHGATE_LOG_FORMAT=text). One logger serves the
// Temporal runtime (the SDK's own lines, Core's forwarded warnings, workflow `log` through the SDK's
// replay-aware sink, activity `log`), and `birthgate worker`'s own lifecycle lines go through the same
// format, so the worker's stderr is one stream of one shape.
//
// Every line carries what the SDK knows (workflowId, runId, workflowType, activityType, attempt …) plus
// what birthgate adds where known: the entity `code`, its `collection` and the `permitId` (the workflow
// side in observability/workflow.ts, the activity side in observability/activity-interceptor.ts).
import type { Logger, LogLevel, LogMetadata } from '@temporalio/common';
import { LogTimestamp } from '@temporalio/worker';

export const LogFormat = ['json', 'text'] as const;
export type LogFormat = (typeof LogFormat)[number];

const SEVERITY: Record<LogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };

/** The fields every line starts with, in this order; the rest follow as the SDK and birthgate give them. */
export type LogLine = { time: string; level: LogLevel; msg: string; component: string } & Record<string, unknown>;

/** JSON.stringify that survives what SDK metadata holds: bigints, errors, dates, cycles (an object seen twice is named, not repeated). */
function toJson(line: LogLine): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(line, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Error) {
      const cause = value.cause instanceof Error ? value.cause.message : undefined;
      return { type: value.name, message: value.message, ...(cause ? { cause } : {}), stack: value.stack };
    }
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return '[repeated]';
      seen.add(value);
    }
    return value;
  });
}

function toText(line: LogLine): string {
  const { time, level, msg, component, ...rest } = line;
  const show = (v: unknown): string => {
    if (v instanceof Error) return JSON.stringify(`${v.name}: ${v.message}`); // the stack is for the JSON lines
    if (typeof v === 'string') return /[\s"]/.test(v) ? JSON.stringify(v) : v;
    if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    return toJson(v as LogLine);
  };
  const fields = Object.entries(rest)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${show(v)}`);
  return `${time} [${level}] ${component === 'birthgate-worker' ? '' : `${component}: `}${msg}${fields.length ? ` ${fields.join(' ')}` : ''}`;
}

export function formatLine(format: LogFormat, line: LogLine): string {
  return format === 'json' ? toJson(line) : toText(line);
}

/**
 * The Temporal runtime's logger. `level` is the floor for workflow and activity lines; the SDK's own
 * worker and Core lines are kept from WARN only in text mode, where their INFO chatter would drown the
 * lines a person reads (in JSON a shipper filters by `component`).
 */
export class LineLogger implements Logger {
  constructor(
    private readonly format: LogFormat,
    private readonly write: (line: string) => void,
    private readonly level: LogLevel = 'INFO',
  ) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    const { [LogTimestamp]: nanos, sdkComponent, ...rest } = (meta ?? {}) as LogMetadata & { [LogTimestamp]?: bigint };
    const component = typeof sdkComponent === 'string' ? sdkComponent : 'birthgate-worker';
    const floor = this.format === 'text' && (component === 'worker' || component === 'core') ? 'WARN' : this.level;
    if (SEVERITY[level] < SEVERITY[floor]) return;
    const time = new Date(typeof nanos === 'bigint' ? Number(nanos / 1_000_000n) : Date.now()).toISOString();
    // Null fields are left out, as the SDK's composed loggers already do for workflow and activity lines.
    const fields = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== null && v !== undefined));
    this.write(formatLine(this.format, { time, level, msg: message, component, ...fields }));
  }

  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/**
 * `birthgate worker`'s own lines (identity, build id, drain …) in the same format: text stays the line
 * as it was written; JSON wraps it as `msg` with component `birthgate-worker`.
 */
export function workerLines(format: LogFormat, write: (line: string) => void): (line: string, level?: LogLevel) => void {
  if (format === 'text') return (line) => write(line);
  return (line, level = 'INFO') => write(toJson({ time: new Date().toISOString(), level, msg: line, component: 'birthgate-worker' }));
}
