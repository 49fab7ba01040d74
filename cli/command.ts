// The shape every CLI command module exports, and the errors a command throws. See cli/README.md.
import type { Config } from '../config/index.ts';
import type { StackEndpoints } from '../stack/endpoints.ts';

export type CliContext = {
  config: Config;
  /** The verb's result: stdout. In --json mode a command writes its one JSON value here and nothing else. */
  out: (line: string) => void;
  /** Human text, progress, warnings: stderr (in --json mode too, so stdout stays one JSON value). */
  err: (line: string) => void;
  /** Where the running stack is (embedded state file or external env); throws a CliError with `next` if down. */
  endpoints: () => Promise<StackEndpoints>;
};

export type Command = {
  name: string;
  summary: string;
  usage: string;
  /** The verb's own options for `--help`, as [flag, what it does]; `--json` and `--help` are added there. */
  options?: ReadonlyArray<readonly [flag: string, text: string]>;
  /**
   * Real, runnable invocations, each starting with `birthgate <name>`; the first one is what
   * test/cli-help.test.ts dispatches (with a bad option added), so it must reach this command.
   */
  examples: readonly [string, ...string[]];
  /**
   * When two commands share a name (`rollback --to N` for the packet, `rollback CODE` for an
   * admission), the first whose `accepts` says yes to the arguments runs.
   */
  accepts?(args: string[]): boolean;
  run(args: string[], ctx: CliContext): Promise<number>;
};

/** The exit codes, the same for every verb (README, `birthgate <verb> --help`). */
export const EXIT = { done: 0, failed: 1, refused: 2, waiting: 3 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_LEGEND: ReadonlyArray<readonly [ExitCode, string]> = [
  [EXIT.done, 'done'],
  [EXIT.failed, 'failed (the message says why, and `next:` what to do)'],
  [EXIT.refused, 'usage error or refused input: nothing was changed'],
  [EXIT.waiting, 'blocked, or waiting for a human (the message says who, and with which command)'],
];

export type CliErrorOptions = {
  /** A stable, machine-readable name: USAGE, STACK_DOWN, NO_WORKER, a PacketFailure code, a SQLSTATE. */
  code?: string;
  /** What the user can do about it, printed as `next: …` (and as error.next in --json). */
  next?: string;
  /** Further fields of the --json error object (the packet's run id, step, sqlstate …). */
  details?: Record<string, unknown>;
};

/**
 * A failure the CLI explains: its exit code, its message and what to do next. main.ts prints it
 * (cli/errors.ts printError): `birthgate <verb>: message` and `next: …` on stderr, and with --json
 * `{"error":{"code","message","next"}}` on stdout.
 */
export class CliError extends Error {
  override name = 'CliError';
  readonly exit: Exclude<ExitCode, 0>;
  readonly code: string;
  readonly next: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(message: string, exit: Exclude<ExitCode, 0>, opts: CliErrorOptions = {}) {
    super(message);
    this.exit = exit;
    this.code = opts.code ?? (exit === EXIT.refused ? 'REFUSED' : exit === EXIT.waiting ? 'WAITING' : 'FAILED');
    this.next = opts.next;
    this.details = opts.details;
  }
}

/** A usage error: printed with the command's usage, exit code 2, nothing was changed. */
export class UsageError extends CliError {
  override name = 'UsageError';

  constructor(message: string, opts: Omit<CliErrorOptions, 'code'> = {}) {
    super(message, EXIT.refused, { ...opts, code: 'USAGE' });
  }
}
