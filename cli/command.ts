// The shape every CLI command module exports. See cli/README.md.
import type { Config } from '../config/index.ts';
import type { StackEndpoints } from '../stack/endpoints.ts';

export type CliContext = {
  config: Config;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Where the running stack is (embedded state file or external env); throws a clear error if down. */
  endpoints: () => Promise<StackEndpoints>;
};

export type Command = {
  name: string;
  summary: string;
  usage: string;
  /**
   * When two commands share a name (`rollback --to N` for the packet, `rollback CODE` for an
   * admission), the first whose `accepts` says yes to the arguments runs.
   */
  accepts?(args: string[]): boolean;
  run(args: string[], ctx: CliContext): Promise<number>;
};

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
