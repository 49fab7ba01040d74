// The help texts, built from the commands themselves (name, usage, summary, options, examples) so a
// new verb is documented the moment it is registered: `birthgate help`, `birthgate help <verb>`,
// `birthgate <verb> --help`, `birthgate <group> --help`.
import { EXIT_LEGEND, type Command } from './command.ts';

/** Internal verbs (the detached supervisor) run, but are not listed in the overview. */
export const isInternal = (c: Command): boolean => c.summary.startsWith('(internal)');

const COMMON: ReadonlyArray<readonly [string, string]> = [
  ['--json', 'one JSON value on stdout (the result, or {"error":{code,message,next}}); human text and progress on stderr'],
  ['-h, --help', 'this help'],
];

function legend(): string[] {
  return ['exit codes:', ...EXIT_LEGEND.map(([code, text]) => `  ${code}  ${text}`)];
}

function table(rows: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.min(28, Math.max(...rows.map(([flag]) => flag.length)));
  return rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`);
}

function block(c: Command): string[] {
  const own = c.options ?? [];
  const common = COMMON.filter(([flag]) => !own.some(([o]) => o.split(/[ ,=]/)[0] === flag.split(/[ ,=]/)[0]));
  return [
    `usage: birthgate ${c.usage}`,
    `  ${c.summary}`,
    '',
    'options:',
    ...table([...own, ...common]),
    '',
    'examples:',
    ...c.examples.map((e) => `  ${e}`),
  ];
}

/** One verb's help; two commands of the same name (`rollback`) are shown one after the other. */
export function verbHelp(same: Command[]): string {
  return [...same.flatMap((c, i) => [...(i ? [''] : []), ...block(c)]), '', ...legend()].join('\n');
}

/** The verbs of a group (`stack`, `packet`, `worker`, `schedules`). */
export function groupHelp(group: string, members: Command[]): string {
  return [
    `usage: birthgate ${group} <verb> …   (\`birthgate ${group} <verb> --help\` for its options and examples)`,
    '',
    ...members.filter((c) => !isInternal(c)).map((c) => `  birthgate ${c.usage}\n      ${c.summary}`),
  ].join('\n');
}

/** Every verb: `birthgate`, `birthgate --help`, `birthgate help`. */
export function overview(all: Command[]): string {
  return [
    'usage: birthgate <verb> [options]   (`birthgate help <verb>` or `birthgate <verb> --help`: its options and examples)',
    '',
    'verbs:',
    ...all.filter((c) => !isInternal(c)).map((c) => `  ${c.usage}\n      ${c.summary}`),
    '',
    'every verb takes --json: one JSON value on stdout, human text and progress on stderr',
    '',
    ...legend(),
  ].join('\n');
}
