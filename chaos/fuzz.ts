// Seeded fuzz values for the fuzz pass over the client, the CLI and the SQL functions
// (test/fuzz.test.ts): random unicode, SQL and format metacharacters, control and invisible
// characters, huge strings, NULLs and values of the wrong type. Each generator says what it makes:
// `invalid*` values break a rule of the boundary they are aimed at by construction (so every call
// with one must be refused, and nothing written); `nastyPrintable` values are valid text full of
// metacharacters (so they must travel as data, never as SQL).
import type { Prng } from './prng.ts';

/** SQL, shell, JSON and format-string metacharacters, and injection shapes. */
export const METACHARACTERS = [
  `'`, `"`, `;`, `--`, `/*`, `*/`, `\\`, `$$`, `$1`, `%s`, `%I`, `%L`, `' OR '1'='1`, `'); DROP TABLE dot_tools; --`,
  '`', '${process.env}', '{{x}}', '<script>', '|', '&&', '$(id)', '\\u0000', ':=', '=>', '::regclass', 'E\'\\x41\'',
] as const;

const RANGES: Array<[number, number]> = [
  [0x21, 0x7e], // ASCII printable
  [0xa1, 0xff], // Latin-1
  [0x400, 0x4ff], // Cyrillic
  [0x5d0, 0x5ea], // Hebrew (right to left)
  [0x627, 0x64a], // Arabic
  [0x4e00, 0x4fff], // CJK
  [0x1f600, 0x1f64f], // emoji (astral: two UTF-16 units, one code point)
  [0x1d400, 0x1d433], // mathematical letters (astral)
];
/** Combining marks: printable only on a base character. */
const COMBINING: Array<[number, number]> = [[0x300, 0x36f]];

/** Characters the client refuses (zod: Cc, Cf, Cs, Co, Zl, Zp) — control, zero-width, bidi, BOM, separators. */
export const INVISIBLE = ['\n', '\t', '\r', '\u0001', '\u001b', '\u007f', '\u0085', '\u200b', '\u200e', '\u202e', '\u2028', '\u2029', '\ufeff', '\ue000'];
/** What PostgreSQL's [[:cntrl:]] refuses in an identifier (ASCII control characters). */
export const ASCII_CONTROL = ['\n', '\t', '\r', '\u0001', '\u001b', '\u007f'];

export function randomUnicode(rng: Prng, codePoints: number): string {
  let s = '';
  for (let i = 0; i < codePoints; i++) {
    const [lo, hi] = rng.pick(RANGES);
    s += String.fromCodePoint(rng.int(lo, hi));
    if (rng.chance(0.05)) s += String.fromCodePoint(rng.int(...rng.pick(COMBINING)));
  }
  return s;
}

/** Printable text: unicode and metacharacters mixed, no control or invisible characters, no surrounding whitespace. */
export function nastyPrintable(rng: Prng, maxCodePoints = 60): string {
  const parts: string[] = [];
  while ([...parts.join('')].length < maxCodePoints / 2) {
    parts.push(rng.chance(0.5) ? rng.pick(METACHARACTERS) : randomUnicode(rng, rng.int(1, 8)));
  }
  const s = `x${parts.join(rng.pick(['', ' ', '-', '_']))}x`.replace(/\\u0000/g, 'u0000');
  return [...s].slice(0, maxCodePoints).join('').trim() || 'x';
}

export function codePointLength(s: string): number {
  return [...s].length;
}

/** A string of more than `max` code points (up to 100,000 code points beyond, sometimes). */
export function tooLong(rng: Prng, max: number): string {
  const n = max + 1 + (rng.chance(0.2) ? rng.int(10_000, 100_000) : rng.int(0, 300));
  return rng.chance(0.5) ? 'x'.repeat(n) : randomUnicode(rng, n);
}

/** Insert `ch` at a random position of `s`. */
export function insertAt(rng: Prng, s: string, ch: string): string {
  const cps = [...s];
  cps.splice(rng.int(0, cps.length), 0, ch);
  return cps.join('');
}

export type Invalid = { value: unknown; why: string };

/** Text the client's zod contract refuses (contracts/admission.ts `printable`): every one of these. */
export function invalidClientText(rng: Prng, max: number): Invalid {
  const base = nastyPrintable(rng, 20);
  const kind = rng.pick(['empty', 'leading space', 'trailing space', 'invisible', 'too long', 'null', 'number', 'object', 'array', 'boolean'] as const);
  switch (kind) {
    case 'empty': return { value: '', why: kind };
    case 'leading space': return { value: ` ${base}`, why: kind };
    case 'trailing space': return { value: `${base}${rng.pick([' ', '\u00a0', '\u3000'])}`, why: kind };
    case 'invisible': return { value: insertAt(rng, base, rng.pick(INVISIBLE)), why: kind };
    case 'too long': return { value: tooLong(rng, max), why: kind };
    case 'null': return { value: null, why: kind };
    case 'number': return { value: rng.pick([0, -1, 1e309, Number.NaN, 2 ** 63]), why: kind };
    case 'object': return { value: { toString: 'DOT-1', $where: '1' }, why: kind };
    case 'array': return { value: ['DOT-1'], why: kind };
    case 'boolean': return { value: true, why: kind };
  }
}

/** A name that is not a lower-case table or column name. */
export function invalidIdentifier(rng: Prng): Invalid {
  const kind = rng.pick(['upper case', 'metacharacters', 'unicode', 'too long', 'leading digit', 'empty', 'null'] as const);
  switch (kind) {
    case 'upper case': return { value: `Dot_${rng.int(0, 999)}`, why: kind };
    case 'metacharacters': return { value: `dot_tools${rng.pick(METACHARACTERS)}`, why: kind };
    case 'unicode': return { value: `dot_${randomUnicode(rng, 3)}`, why: kind };
    case 'too long': return { value: 'd'.repeat(rng.int(64, 5000)), why: kind };
    case 'leading digit': return { value: `${rng.int(0, 9)}dot`, why: kind };
    case 'empty': return { value: '', why: kind };
    case 'null': return { value: null, why: kind };
  }
}

/** Text PostgreSQL's fn_admission_require_text refuses as an identifier (NULL, blank, over `max`, control characters). */
export function invalidSqlIdentifierText(rng: Prng, max: number): Invalid {
  const kind = rng.pick(['null', 'empty', 'blank', 'too long', 'control', 'nul byte'] as const);
  switch (kind) {
    case 'null': return { value: null, why: kind };
    case 'empty': return { value: '', why: kind };
    case 'blank': return { value: ' '.repeat(rng.int(1, 50)), why: kind };
    case 'too long': return { value: tooLong(rng, max), why: kind };
    case 'control': return { value: insertAt(rng, nastyPrintable(rng, 30), rng.pick(ASCII_CONTROL)), why: kind };
    case 'nul byte': return { value: insertAt(rng, nastyPrintable(rng, 30), '\u0000'), why: kind };
  }
}

/** Free text (a reason) PostgreSQL refuses: NULL, blank, over `max`, a NUL byte. */
export function invalidSqlFreeText(rng: Prng, max: number): Invalid {
  const kind = rng.pick(['null', 'empty', 'blank', 'too long', 'nul byte'] as const);
  switch (kind) {
    case 'null': return { value: null, why: kind };
    case 'empty': return { value: '', why: kind };
    case 'blank': return { value: ' '.repeat(rng.int(1, 50)), why: kind };
    case 'too long': return { value: tooLong(rng, max), why: kind };
    case 'nul byte': return { value: insertAt(rng, nastyPrintable(rng, 30), '\u0000'), why: kind };
  }
}

/** A bigint id that names nothing, or is not a bigint at all. */
export function invalidId(rng: Prng): Invalid {
  const kind = rng.pick(['null', 'unknown', 'negative', 'not a number', 'out of range', 'injection'] as const);
  switch (kind) {
    case 'null': return { value: null, why: kind };
    case 'unknown': return { value: String(rng.int(900_000_000, 999_999_999)), why: kind };
    case 'negative': return { value: String(-rng.int(1, 1e6)), why: kind };
    case 'not a number': return { value: nastyPrintable(rng, 12), why: kind };
    case 'out of range': return { value: '9'.repeat(rng.int(20, 60)), why: kind };
    case 'injection': return { value: `1; DELETE FROM birth_admission_permit; --`, why: kind };
  }
}

/** Anything in `value`, but at least one character of it would be a metacharacter or unicode (never a known word). */
export function garbageWord(rng: Prng): string {
  return `${rng.pick(METACHARACTERS)}${randomUnicode(rng, rng.int(1, 6))}`;
}
