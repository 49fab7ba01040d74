// birthgate CLI entry: dispatch to the command modules.
import { loadConfig } from '../config/index.ts';
import { resolveEndpoints } from '../stack/endpoints.ts';
import { UsageError, type CliContext, type Command } from './command.ts';
import { commands as stackCommands } from './commands/stack.ts';

async function loadCommands(): Promise<Command[]> {
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

function help(all: Command[]): string {
  const shown = all.filter((c) => !c.summary.startsWith('(internal)'));
  return ['usage: birthgate <command> [options]', '', ...shown.map((c) => `  ${c.usage}\n      ${c.summary}`)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const all = await loadCommands();
  // Longest name match first, so "stack up" wins over "stack".
  const byLength = [...all].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  const named = byLength.filter((c) => c.name.split(' ').every((w, i) => argv[i] === w));
  const rest0 = (c: Command) => argv.slice(c.name.split(' ').length);
  const command = named.find((c) => c.accepts?.(rest0(c)) ?? true);
  if (named.length > 1 && !command) {
    console.error(`birthgate ${named[0]!.name}: which one? ${named.map((c) => `\n  birthgate ${c.usage}`).join('')}`);
    return 2;
  }
  if (!command) {
    const wanted = argv[0];
    if (wanted && wanted !== 'help' && wanted !== '--help' && wanted !== '-h') {
      console.error(`birthgate: unknown command "${argv.slice(0, 2).join(' ')}"`);
      console.error(help(all));
      return 2;
    }
    console.log(help(all));
    return 0;
  }
  const rest = argv.slice(command.name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    const same = all.filter((c) => c.name === command.name);
    console.log(same.map((c) => `usage: birthgate ${c.usage}\n  ${c.summary}`).join('\n'));
    return 0;
  }
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`birthgate: ${(err as Error).message}`);
    return 2;
  }
  const ctx: CliContext = {
    config,
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    endpoints: () => resolveEndpoints(config),
  };
  try {
    return await command.run(rest, ctx);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`birthgate ${command.name}: ${err.message}\nusage: birthgate ${command.usage}`);
      return 2;
    }
    console.error(`birthgate ${command.name}: ${(err as Error).message}`);
    if (process.env.BIRTHGATE_DEBUG) console.error(err);
    return 1;
  }
}
