// Every verb's argument parsing: node's util.parseArgs, strict (an unknown option is an error), with
// `--json` accepted everywhere, and its errors turned into UsageErrors (exit 2, nothing changed) that
// say what was wrong without echoing the user's text unbounded.
import { parseArgs } from 'node:util';
import { UsageError } from './command.ts';
import { shown } from './errors.ts';

export type Flags = Record<string, { type: 'boolean' | 'string'; multiple?: boolean }>;
export type Parsed = { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };

/** Edit distance, for "did you mean" (option names are short). */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

function unknownOption(argv: string[], flags: Flags): string {
  const end = argv.indexOf('--');
  const bad = (end < 0 ? argv : argv.slice(0, end)).find((a) => a.startsWith('-') && a !== '-' && !(a.replace(/^--?/, '').split('=')[0]! in flags)) ?? '';
  const name = bad.replace(/^--?/, '').split('=')[0]!;
  const close = Object.keys(flags).filter((k) => name.length > 1 && (distance(name, k) <= 2 || k.startsWith(name)));
  return `unknown option ${shown(bad)}${close.length ? `; did you mean ${close.map((k) => `--${k}`).join(' or ')}?` : ''}`;
}

/**
 * parseArgs with `--json` added and strict on. `positionals`: how many the verb takes (default none);
 * a count that differs is a usage error naming what was expected.
 */
export function parseFlags(argv: string[], flags: Flags, opts: { positionals?: number; what?: string } = {}): Parsed {
  const all: Flags = { json: { type: 'boolean' }, ...flags };
  const want = opts.positionals ?? 0;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: all, allowPositionals: want > 0, strict: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    const option = /^Option '(--?[a-z][a-z0-9-]*)/.exec(e.message)?.[1];
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(unknownOption(argv, all));
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const extra = /^Unexpected argument '(.*)'\. This command/s.exec(e.message)?.[1] ?? '';
      throw new UsageError(`unexpected argument ${shown(extra)}: this verb takes no positional arguments`);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option) {
      if (/does not take an argument/.test(e.message)) throw new UsageError(`${option} takes no value`);
      if (/ambiguous/.test(e.message)) throw new UsageError(`${option} needs a value (one that starts with a dash: ${option}=-x)`);
      throw new UsageError(`${option} needs a value`);
    }
    throw new UsageError((e.message.split('\n')[0] ?? 'bad arguments').slice(0, 200));
  }
  if (want > 0 && parsed.positionals.length !== want) {
    const what = opts.what ?? 'CODE';
    throw new UsageError(parsed.positionals.length === 0 ? `${what} is missing` : `expected exactly ${want === 1 ? `one ${what}` : `${want} arguments`}, got ${parsed.positionals.length}`);
  }
  return { values: parsed.values as Parsed['values'], positionals: parsed.positionals };
}

/** A string option's value, if it was given. */
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
