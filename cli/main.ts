// birthgate CLI entry: find the verb, answer --help from the command's own description, run it, and
// turn whatever it throws into the same exit codes and `next:` hints for every verb (cli/README.md).
// Command modules load their heavy dependencies (the Temporal SDK, the client) only when a verb runs,
// so `--help` and a usage error answer at once.
import { loadConfig } from '../config/index.ts';
import { resolveEndpoints } from '../stack/endpoints.ts';
import { CliError, EXIT, type CliContext, type Command } from './command.ts';
import { commands as stackCommands } from './commands/stack.ts';
import { explain, printError, shown } from './errors.ts';
import { groupHelp, isInternal, overview, verbHelp } from './help.ts';

export async function loadCommands(): Promise<Command[]> {
  const groups: Command[][] = [stackCommands];
  // Groups written by other modules are optional at load time so one missing file can't break the CLI.
  for (const mod of ['./commands/start.ts', './commands/world.ts', './commands/verify.ts', './commands/packet.ts', './commands/admission.ts', './commands/worker.ts', './commands/schedules.ts', './commands/drift.ts']) {
    try {
      const m = (await import(mod)) as { commands?: Command[] };
      if (m.commands) groups.push(m.commands);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    }
  }
  return groups.flat();
}

const words = (c: Command) => c.name.split(' ');
const stdout = (line: string) => void process.stdout.write(`${line}\n`);
const stderr = (line: string) => void process.stderr.write(`${line}\n`);
const isHelp = (a: string) => a === '--help' || a === '-h';

/** Not a verb: exit 2, with the nearest verbs when the first word names some. */
function unknownVerb(all: Command[], argv: string[], json: boolean): number {
  const first = argv[0] ?? '';
  const near = all.filter((c) => !isInternal(c) && (words(c)[0] === first || words(c)[0]!.startsWith(first.slice(0, 3)))).map((c) => `birthgate ${c.name}`);
  const hint = near.length ? `; did you mean ${[...new Set(near)].slice(0, 4).join(', ')}?` : '';
  return printError({ out: stdout, err: stderr }, { verb: '', json }, new CliError(`unknown verb ${shown(argv.slice(0, 2).join(' '))}${hint}`, EXIT.refused, {
    code: 'USAGE',
    next: '`birthgate help` lists every verb',
  }));
}

/** A word that starts several verbs (`stack`, `packet`) or a name shared by two (`rollback`): which one? */
function whichOne(prefix: string, members: Command[], json: boolean): number {
  stderr(`birthgate ${prefix}: which one? ${members.filter((c) => !isInternal(c)).map((c) => `\n  birthgate ${c.usage}`).join('')}`);
  stderr(`next: \`birthgate help ${prefix}\` shows each with an example`);
  if (json) stdout(JSON.stringify({ error: { code: 'USAGE', message: `birthgate ${prefix}: which one?`, next: `birthgate help ${prefix}` } }, null, 2));
  return EXIT.refused;
}

/** `birthgate help [verb …]`. */
function help(all: Command[], wanted: string[]): number {
  if (wanted.length === 0) {
    stdout(overview(all));
    return EXIT.done;
  }
  const same = all.filter((c) => c.name === wanted.join(' '));
  if (same.length) {
    stdout(verbHelp(same));
    return EXIT.done;
  }
  const members = all.filter((c) => words(c)[0] === wanted[0] && wanted.length === 1);
  if (members.length) {
    stdout(groupHelp(wanted[0]!, members));
    return EXIT.done;
  }
  return unknownVerb(all, wanted, false);
}

/**
 * A reader that goes away early (`birthgate stuck | head -1`) closes the pipe: what is left to print is
 * dropped, and the verb still finishes its work and returns its own exit code — an apply is not
 * abandoned half way because its output was not wanted.
 */
export function toleratePipeClose(stream: NodeJS.WriteStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stream.write = (() => true) as typeof stream.write;
  });
}

export async function main(argv: string[]): Promise<number> {
  toleratePipeClose(process.stdout);
  toleratePipeClose(process.stderr);
  const all = await loadCommands();
  if (argv.length === 0 || isHelp(argv[0]!)) return help(all, []);
  if (argv[0] === 'help') return help(all, argv.slice(1).filter((a) => !a.startsWith('-')));

  // Longest name match first, so "stack up" wins over "stack".
  const byLength = [...all].sort((a, b) => words(b).length - words(a).length);
  const named = byLength.filter((c) => words(c).every((w, i) => argv[i] === w));
  const jsonAnywhere = argv.includes('--json');
  if (named.length === 0) {
    const members = all.filter((c) => words(c)[0] === argv[0] && words(c).length > 1);
    if (members.length === 0) return unknownVerb(all, argv, jsonAnywhere);
    if (argv.slice(1).some(isHelp)) return help(all, [argv[0]!]);
    return whichOne(argv[0]!, members, jsonAnywhere);
  }
  const longest = named[0]!;
  if (argv.slice(words(longest).length).some(isHelp)) {
    stdout(verbHelp(all.filter((c) => c.name === longest.name)));
    return EXIT.done;
  }
  const command = named.find((c) => c.accepts?.(argv.slice(words(c).length)) ?? true);
  if (!command) return whichOne(longest.name, all.filter((c) => c.name === longest.name), jsonAnywhere);

  const rest = argv.slice(words(command).length);
  const json = rest.includes('--json');
  const where = { verb: command.name, usage: command.usage, json };
  // In --json mode stdout carries the one JSON value: a library's console.log goes to stderr instead.
  if (json) console.log = console.info = console.debug = console.error;
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    return printError({ out: stdout, err: stderr }, where, new CliError((err as Error).message.replace(/:\n\s*/, ': ').replace(/\n\s*/g, '; '), EXIT.refused, {
      code: 'CONFIG',
      next: 'fix the environment variable named above (README: configuration), then run it again',
    }));
  }
  const ctx: CliContext = {
    config,
    out: stdout,
    err: stderr,
    endpoints: async () => {
      try {
        return await resolveEndpoints(config);
      } catch {
        throw new CliError('the stack is not running (no ready embedded stack, and DATABASE_URL and TEMPORAL_ADDRESS are not both set)', EXIT.failed, {
          code: 'STACK_DOWN',
          next: 'run `birthgate stack up --detach` (or set DATABASE_URL and TEMPORAL_ADDRESS)',
        });
      }
    },
  };
  try {
    return await command.run(rest, ctx);
  } catch (err) {
    if (process.env.BIRTHGATE_DEBUG) console.error(err);
    return printError(ctx, where, explain(err));
  }
}
