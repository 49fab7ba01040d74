// The rehearsal report in the shape of KB-3A66 (sections 1–9 of that checkpoint): live mutation,
// entry hash == exit hash, feasibility, the three decisions, blockers — and, since issue 9 item 6, where
// it ran: the clone the changes fell on, what is proven there and what on the live estate, and the
// strongest lock the rehearsal took on each live object. JSON for machines, markdown for the owner;
// both from the same object.
import fs from 'node:fs';
import path from 'node:path';
import { catalogPart, governedHash } from '../packet/drift.ts';
import { diffFingerprints, fingerprintHash, keyFunctionHashes, type Fingerprint, type FingerprintDiff } from '../packet/fingerprint.ts';
import { catalogRowsDiff } from './catalog-rows.ts';
import type { CloneFidelity, CloneSummary } from './clone.ts';
import { lockRank, type LiveLockReport } from './live-locks.ts';
import type { PlanRun, RehearsalFacts, SequenceMove, StepRehearsal } from './rehearse.ts';

/** KB-3A66 §9: the blockers that are authority, not engineering; no rehearsal can clear them. */
export const AUTHORITY_BLOCKERS = [
  'Owner DDL approval (apply packet; step 7 is a one-way door) — KB-3A66 §9.1',
  'dot-dot-register registrar credentials — ABSENT — KB-3A66 §9.2',
  'External scheduler — pg_cron absent (here: Temporal Schedules) — KB-3A66 §9.3',
  'Human OSPA ≥ 1 — governance ACTIVATION only, not birth — KB-3A66 §9.4',
  'Owner identity decision: dot_iu_command_catalog (54) + 6 REAL_MISSING phantoms — KB-3A66 §9.5',
] as const;

/** Issue 9 item 6: what the rehearsal proves where. The clone is tied to the live state by its fingerprint. */
export const PROVEN_ON = {
  clone: [
    'every step\'s up.sql and verify.sql, in one transaction (steps 4/5 derive their patch from the clone\'s copy of the live body: byte-identical, same md5)',
    'the composite index build (non-concurrent) and the USING INDEX promotion at full size, with their lock windows',
    'the KB-7D57 post-apply test plan, line by line; ENABLE ALWAYS of the governed triggers',
    'the composite feasibility probes, on the copied rows',
  ],
  live: [
    'the clone equals the live state: its catalog fingerprint, read inside the transaction, is the live one\'s (function OIDs aside) under one snapshot',
    'entry fingerprint == exit fingerprint and the raw catalog rows, read before BEGIN and after the ROLLBACK; no sequence advanced',
    'the strongest lock on each live object (ACCESS SHARE at most), from the rehearsal\'s own backend and pg_locks sampled from another session; the sessions that waited on it',
  ],
  notHere: [
    'CREATE INDEX CONCURRENTLY itself cannot run in a transaction: the apply\'s online build under a writer is `npm run bench -- packet` (b)',
    'database-wide objects cannot be cloned: the packet\'s roles (step 1) and event triggers are created, and the live event triggers altered (step 16), as uncommitted catalog rows that no other session sees',
  ],
} as const;

const PERMIT_LINES = ['new-code-born-once', 'no-permit-blocked', 'valid-permit-finalized'];
const FINALIZE_LINES = ['valid-permit-finalized'];

export type RehearsalReport = {
  title: string;
  kb: string;
  database: string;
  serverVersion: string;
  date: string;
  executionMode: string;
  status: 'PASS' | 'FAIL';
  durationMs: number;
  transactionMs: number;
  /** Live writers could have been blocked this long (a write-blocking lock on a live object to the ROLLBACK); 0 on a clean run. */
  writeBlockingMs: number;
  clone: {
    verdict: 'EXACT' | 'DIFFERS' | 'NOT_BUILT';
    summary: CloneSummary | null;
    fidelity: CloneFidelity | null;
    provenOn: typeof PROVEN_ON;
  };
  liveLocks: LiveLockReport;
  liveMutation: {
    verdict: 'NONE' | 'DETECTED';
    catalogRowsEqual: boolean;
    differingCatalogs: string[];
    /** Not rolled back by any ROLLBACK: live sequences the rehearsal advanced (gaps, no rows). */
    nonTransactional: SequenceMove[];
    /**
     * Live sequences that moved meanwhile but not by the rehearsal: it never held them in more than
     * ACCESS SHARE, and nextval takes ROW EXCLUSIVE — concurrent writers did.
     */
    movedByOthers: SequenceMove[];
  };
  entryExit: {
    equal: boolean;
    entryHash: string;
    exitHash: string;
    /** The governed hash to pass to `birthgate apply --expect` (packet/drift.ts). */
    governedHash: string;
    keyFunctions: Record<string, { entry: { oid: number; md5: string } | null; exit: { oid: number; md5: string } | null }>;
    birthRegistryConstraints: { entry: string[]; exit: string[] };
    dotToolsTriggerSet: { entry: string; exit: string };
    permitTableAbsentAfter: boolean;
    dotToolsUnborn: { entry: number | null; exit: number | null };
    rowCounts: { entry: Record<string, number | null>; exit: Record<string, number | null> };
    diff: FingerprintDiff[];
  };
  feasibility: { verdict: 'FEASIBLE' | 'NOT_PROVEN'; detail: string; steps: StepRehearsal[] };
  composite: {
    verdict: 'COMPOSITE_READY' | 'NOT_READY';
    probes: Record<string, number>;
    lockWindow: { indexBuild: { ms: number; locks: string[] } | null; promotion: { ms: number; locks: string[] } | null };
    detail: string;
  };
  permitTable: { verdict: 'PROVEN / APPROVE' | 'NOT_PROVEN'; detail: string };
  finalizeTrigger: { verdict: 'PROVEN / APPROVE' | 'NOT_PROVEN'; detail: string; enableAlways: Array<{ table: string; trigger: string; enabled: string }> };
  plan: PlanRun[];
  blockers: { engineering: string[]; authority: readonly string[] };
};

const constraintsOf = (fp: Fingerprint, table: string) =>
  Object.entries(fp.constraints).filter(([k]) => k.startsWith(`${table}.`)).map(([k, v]) => `${k.slice(table.length + 1)} ${(v as { def: string }).def}`).sort();

const triggerSetHash = (fp: Fingerprint, table: string) =>
  fingerprintHash(Object.fromEntries(Object.entries(fp.triggers).filter(([k]) => k.startsWith(`${table}.`))));

const lineOk = (plan: PlanRun[], ids: string[]) => ids.every((id) => plan.find((p) => p.id === id)?.ok === true);

export function buildReport(f: RehearsalFacts): RehearsalReport {
  const entryCat = catalogPart(f.entry);
  const exitCat = catalogPart(f.exit);
  const equal = fingerprintHash(entryCat) === fingerprintHash(exitCat);
  const differingCatalogs = catalogRowsDiff(f.entryRows, f.exitRows);
  const mutation = !equal || differingCatalogs.length > 0;
  const ranAll = !f.failure && f.steps.every((s) => s.ok);
  const planOk = f.plan.length > 0 && f.plan.every((p) => p.ok);
  const build = f.steps.find((s) => s.kind === 'index-build' && s.ran);
  const promo = f.steps.find((s) => s.kind === 'promotion' && s.ran);
  const probes = Object.fromEntries(Object.entries(f.feasibility ?? {}).map(([k, v]) => [k, Number(v)]));
  const compositeReady = ranAll && probes.duplicate_pairs === 0 && probes.null_collections === 0 && probes.fk_references === 0
    && lineOk(f.plan, ['composite-present', 'cross-collection-born']);
  const permitOk = ranAll && lineOk(f.plan, PERMIT_LINES);
  const notAlways = f.triggers.filter((t) => t.enabled !== 'A');
  const finalizeOk = ranAll && lineOk(f.plan, FINALIZE_LINES) && f.triggers.length > 0 && notAlways.length === 0;

  const engineering: string[] = [];
  if (f.liveLocks.stronger.length) {
    engineering.push(`live objects held in more than ACCESS SHARE: ${f.liveLocks.stronger.map((l) => `${l.object} ${l.mode}`).join(', ')}`);
  }
  if (mutation) engineering.push(`live mutation detected: fingerprint ${equal ? 'equal' : 'DIFFERS'}; catalog rows differ in ${differingCatalogs.join(', ') || 'none'}`);
  if (f.failure) engineering.push(f.failure);
  for (const s of f.steps.filter((x) => !x.ok)) if (!f.failure?.startsWith(`step ${s.step} `)) engineering.push(`step ${s.step}: ${s.detail}`);
  for (const p of f.plan.filter((x) => !x.ok)) engineering.push(`plan line "${p.line}" failed: ${p.detail}`);
  if (notAlways.length) engineering.push(`governed triggers not ENABLE ALWAYS: ${notAlways.map((t) => `${t.trigger}=${t.enabled}`).join(', ')}`);

  const seqModes = new Map(f.liveLocks.objects.filter((o) => o.kind === 'sequence').map((o) => [o.object.replace(/"/g, ''), o.mode]));
  const advancedHere = (x: SequenceMove) => lockRank(seqModes.get(`public.${x.sequence}`) ?? '') >= lockRank('RowExclusiveLock');
  const entryFns = keyFunctionHashes(f.entry);
  const exitFns = keyFunctionHashes(f.exit);
  return {
    title: 'Checkpoint — Pre-Birth Pilot (dot_tools) Permit + Composite Rollback Rehearsal',
    kb: 'KB-3A66 shape; packet KB-7D57; test plan DESIGN §6',
    database: f.database,
    serverVersion: f.serverVersion,
    date: f.startedAt,
    executionMode: 'one BEGIN … ROLLBACK (REPEATABLE READ) under the packet advisory lock: an exact clone of schema public built inside it, the live schema renamed out of the way for this transaction only; every step (the index build non-concurrent) and the test plan on the clone; the live objects only read',
    status: engineering.length === 0 ? 'PASS' : 'FAIL',
    durationMs: Math.round(f.durationMs),
    transactionMs: Math.round(f.transactionMs),
    writeBlockingMs: Math.round(f.writeBlockingMs),
    clone: {
      verdict: !f.clone || !f.fidelity ? 'NOT_BUILT' : f.fidelity.equal ? 'EXACT' : 'DIFFERS',
      summary: f.clone ?? null,
      fidelity: f.fidelity ?? null,
      provenOn: PROVEN_ON,
    },
    liveLocks: f.liveLocks,
    liveMutation: {
      verdict: mutation ? 'DETECTED' : 'NONE', catalogRowsEqual: differingCatalogs.length === 0, differingCatalogs,
      nonTransactional: f.sequences.filter(advancedHere), movedByOthers: f.sequences.filter((x) => !advancedHere(x)),
    },
    entryExit: {
      equal,
      entryHash: fingerprintHash(entryCat),
      exitHash: fingerprintHash(exitCat),
      governedHash: governedHash(f.exit),
      keyFunctions: Object.fromEntries(Object.keys(entryFns).map((k) => [k, { entry: entryFns[k] ?? null, exit: exitFns[k] ?? null }])),
      birthRegistryConstraints: { entry: constraintsOf(f.entry, 'birth_registry'), exit: constraintsOf(f.exit, 'birth_registry') },
      dotToolsTriggerSet: { entry: triggerSetHash(f.entry, 'dot_tools'), exit: triggerSetHash(f.exit, 'dot_tools') },
      permitTableAbsentAfter: !f.exit.permit_table_present,
      dotToolsUnborn: { entry: f.entry.dot_tools_unborn, exit: f.exit.dot_tools_unborn },
      rowCounts: { entry: f.entry.row_counts, exit: f.exit.row_counts },
      diff: equal ? [] : diffFingerprints(entryCat, exitCat),
    },
    feasibility: {
      verdict: ranAll && planOk ? 'FEASIBLE' : 'NOT_PROVEN',
      detail: ranAll && planOk
        ? `all ${f.steps.length} steps applied inside the transaction and all ${f.plan.length} plan lines passed, without modifying the global fn_birth_gate`
        : f.failure ?? 'plan lines failed (see blockers)',
      steps: f.steps,
    },
    composite: {
      verdict: compositeReady ? 'COMPOSITE_READY' : 'NOT_READY',
      probes,
      lockWindow: {
        indexBuild: build ? { ms: Math.round(build.ms * 10) / 10, locks: build.locks } : null,
        promotion: promo ? { ms: Math.round(promo.ms * 10) / 10, locks: promo.locks } : null,
      },
      detail: `(entity_code, collection_name) duplicates ${probes.duplicate_pairs ?? '?'}, null collections ${probes.null_collections ?? '?'}, FK deps ${probes.fk_references ?? '?'} across ${probes.births ?? '?'} births; ${probes.on_conflict_entity_code_functions ?? '?'} functions on the old conflict target, patched OID-stable. ONE-WAY DOOR: dropping UNIQUE(entity_code) is irreversible once a 2nd-collection code is born (KB-3A66 §5).`,
    },
    permitTable: {
      verdict: permitOk ? 'PROVEN / APPROVE' : 'NOT_PROVEN',
      detail: '7-state CHECK, uq_permit_idem, uq_permit_active; no permit / expired permit refused, a valid permit consumed and finalized (KB-3A66 §6)',
    },
    finalizeTrigger: {
      verdict: finalizeOk ? 'PROVEN / APPROVE' : 'NOT_PROVEN',
      detail: 'DEFERRABLE INITIALLY DEFERRED constraint trigger (the trg_iu_birth_gate_layer2 shape): CONSUMED → FINALIZED, the existing birth marked and linked, never a second birth (KB-3A66 §7)',
      enableAlways: f.triggers,
    },
    plan: f.plan,
    blockers: { engineering, authority: AUTHORITY_BLOCKERS },
  };
}

const yes = (b: boolean) => (b ? 'YES' : 'NO');
const ms = (n: number) => `${n.toFixed(1)} ms`;

export function renderMarkdown(r: RehearsalReport): string {
  const e = r.entryExit;
  const L: string[] = [
    `# ${r.title}`, '',
    `Date: ${r.date} · Database: ${r.database} (PostgreSQL ${r.serverVersion}) · Final status: **${r.status}**`,
    `Execution mode: ${r.executionMode}. Duration ${r.durationMs} ms; the transaction ${r.transactionMs} ms${r.clone.summary ? `, of which the clone ${r.clone.summary.ms.total} ms` : ''}; live writers blockable ${r.writeBlockingMs} ms.`, '',
    '## 1. Live mutation', '',
    `**${r.liveMutation.verdict}.** Every step and every plan line ran inside one BEGIN…ROLLBACK, on the clone (§9). Raw catalog rows equal: ${yes(r.liveMutation.catalogRowsEqual)}${r.liveMutation.differingCatalogs.length ? ` (differ: ${r.liveMutation.differingCatalogs.join(', ')})` : ''}.`,
    liveLockLine(r.liveLocks),
    r.liveMutation.nonTransactional.length
      ? `Non-transactional side effects (sequences are never rolled back; gaps only, no rows): ${r.liveMutation.nonTransactional.map((s) => `${s.sequence} ${s.before ?? '∅'}→${s.after ?? '∅'}`).join(', ')}.`
      : 'No live sequence advanced by the rehearsal.',
    ...(r.liveMutation.movedByOthers.length
      ? [`Moved meanwhile by other sessions (the rehearsal held them in ACCESS SHARE at most; nextval takes ROW EXCLUSIVE): ${r.liveMutation.movedByOthers.map((s) => `${s.sequence} ${s.before ?? '∅'}→${s.after ?? '∅'}`).join(', ')}.`]
      : []), '',
    '## 2. Entry hash == exit hash', '',
    `**${yes(e.equal)}.** entry ${e.entryHash} · exit ${e.exitHash}`,
    `Governed hash (for \`birthgate apply --expect\`): ${e.governedHash}`, '',
    '| object | entry | exit |', '|---|---|---|',
    ...Object.entries(e.keyFunctions).map(([k, v]) => `| ${k} md5 / oid | ${v.entry ? `${v.entry.md5.slice(0, 8)}… / ${v.entry.oid}` : 'absent'} | ${v.exit ? `${v.exit.md5.slice(0, 8)}… / ${v.exit.oid}` : 'absent'} |`),
    `| birth_registry constraints | ${e.birthRegistryConstraints.entry.join('; ')} | ${e.birthRegistryConstraints.exit.join('; ')} |`,
    `| dot_tools trigger set | ${e.dotToolsTriggerSet.entry.slice(0, 12)}… | ${e.dotToolsTriggerSet.exit.slice(0, 12)}… |`,
    `| birth_admission_permit | absent | ${e.permitTableAbsentAfter ? 'ABSENT' : 'PRESENT'} |`,
    `| dot_tools unborn | ${e.dotToolsUnborn.entry} | ${e.dotToolsUnborn.exit} |`,
    ...(e.diff.length ? ['', 'Differences:', ...e.diff.map((d) => `- ${d.path}: ${JSON.stringify(d.before)} → ${JSON.stringify(d.after)}`)] : []), '',
    '## 3. dot_tools pilot feasibility', '',
    `**${r.feasibility.verdict}.** ${r.feasibility.detail}`, '',
    '| step | title | ran | ok | ms | lock held (clone) | detail |', '|---|---|---|---|---|---|---|',
    ...r.feasibility.steps.map((s) => `| ${s.step} | ${s.title} | ${s.ran ? 'yes' : 'skipped'} | ${s.ok ? 'ok' : 'FAIL'} | ${s.ms.toFixed(1)} | ${s.locks.join(', ')} | ${s.detail.replace(/\|/g, '\\|').slice(0, 160)} |`), '',
    '## 4. Composite-unique decision', '',
    `**${r.composite.verdict}.** ${r.composite.detail}`,
    `Lock window, measured on the clone at full size — index build (non-concurrent here; CONCURRENTLY in the apply, writers go on): ${r.composite.lockWindow.indexBuild ? `${ms(r.composite.lockWindow.indexBuild.ms)} holding ${r.composite.lockWindow.indexBuild.locks.join(', ') || '—'}` : 'not run'}; USING INDEX promotion (the apply's ACCESS EXCLUSIVE window): ${r.composite.lockWindow.promotion ? `${ms(r.composite.lockWindow.promotion.ms)} holding ${r.composite.lockWindow.promotion.locks.join(', ') || '—'}` : 'not run'}.`,
    `Probes (KB-2590 §3): ${Object.entries(r.composite.probes).map(([k, v]) => `${k}=${v}`).join(', ')}`, '',
    '## 5. Permit-table decision', '', `**${r.permitTable.verdict}.** ${r.permitTable.detail}`, '',
    '## 6. Finalize-trigger decision', '', `**${r.finalizeTrigger.verdict}.** ${r.finalizeTrigger.detail}`,
    `ENABLE ALWAYS: ${r.finalizeTrigger.enableAlways.map((t) => `${t.table}.${t.trigger}=${t.enabled}`).join(', ') || 'not checked'}`, '',
    '## 7. Post-apply test plan (KB-7D57, DESIGN §6), run inside the transaction', '',
    '| line | result | ms | detail |', '|---|---|---|---|',
    ...r.plan.map((p) => `| ${p.line} | ${p.ok ? 'pass' : 'FAIL'} | ${p.ms.toFixed(1)} | ${p.detail.replace(/\|/g, '\\|')} |`), '',
    '## 8. Blockers', '',
    r.blockers.engineering.length ? 'Engineering:' : 'Engineering: none — nothing blocks the engineering.',
    ...r.blockers.engineering.map((b) => `- ${b}`), '',
    'Authority (not engineering):', ...r.blockers.authority.map((b) => `- ${b}`), '',
    ...cloneSection(r), '',
  ];
  return `${L.join('\n')}\n`;
}

function liveLockLine(l: LiveLockReport): string {
  const held = l.stronger.length
    ? `**more than ACCESS SHARE on ${l.stronger.map((x) => `${x.object} (${x.mode})`).join(', ')}**`
    : `**ACCESS SHARE at most** on the ${l.objects.length} live objects it read (${l.untouched} never locked)`;
  const waited = l.blocked.length
    ? `sessions that waited on it: ${l.blocked.map((b) => `pid ${b.pid} ${b.application || '?'} (${b.waitEvent}, ${b.samples} samples): ${b.query.slice(0, 80)}`).join('; ')}`
    : 'no session ever waited on it';
  const why = (catalog: string) => /^pg_auth(id|_members)$/.test(catalog)
    ? ' (step 1\'s roles: role DDL elsewhere in the cluster waits for the ROLLBACK; births and logins do not)'
    : '';
  const catalogs = l.catalogs.length
    ? ` System catalogs held in more than ROW EXCLUSIVE: ${l.catalogs.map((c) => `${c.catalog} ${c.mode}${why(c.catalog)}`).join(', ')}.`
    : '';
  return `Live locks: ${held}; ${waited} (pg_locks and pg_blocking_pids sampled every ${l.sampleMs} ms from another session, ${l.samples} samples, and read on the rehearsal's own backend after every step and plan line; at most ${l.peakLocksHeld} locks held at once, the clone's included).${catalogs}`;
}

function cloneSection(r: RehearsalReport): string[] {
  const c = r.clone.summary;
  const f = r.clone.fidelity;
  const groups = new Map<string, string[]>();
  for (const o of r.liveLocks.objects) {
    const k = `${o.mode}|${o.kind}`;
    groups.set(k, [...(groups.get(k) ?? []), o.object.replace(/^public\./, '')]);
  }
  const rows = [...groups].sort(([a], [b]) => lockRank(b.split('|')[0]!) - lockRank(a.split('|')[0]!) || a.localeCompare(b));
  return [
    '## 9. Where it ran: the clone and the live estate', '',
    `**Clone ${r.clone.verdict}.** ${c
      ? `Schema public rebuilt inside the transaction (the live schema is \`${c.liveSchema}\` there, and only there): ${c.tables} tables (${c.unloggedTables} UNLOGGED) with all ${c.rows.toLocaleString('en-US')} rows, ${c.sequences} sequences, ${c.functions} functions, ${c.views} views, ${c.constraints} keys and foreign keys, ${c.indexes} indexes, ${c.triggers} triggers, owners and privileges; live event triggers paused while building: ${c.eventTriggersPaused.join(', ') || 'none'}. ms: read ${c.ms.read}, structure ${c.ms.structure}, rows ${c.ms.rows}, keys and indexes ${c.ms.keysAndIndexes}, triggers and privileges ${c.ms.triggersAndPrivileges}, analyze ${c.ms.analyze}, total ${c.ms.total}.`
      : 'Not built: nothing was rehearsed (see blockers).'}`,
    f ? `Clone fingerprint ${f.cloneHash.slice(0, 16)}… ${f.equal ? '==' : '≠'} live ${f.liveHash.slice(0, 16)}… (function OIDs aside)${f.equal ? '' : `: ${f.diff.slice(0, 10).map((d) => d.path).join(', ')}`}.` : '', '',
    'Proven on the clone:', ...r.clone.provenOn.clone.map((x) => `- ${x}`), '',
    'Proven on the live estate:', ...r.clone.provenOn.live.map((x) => `- ${x}`), '',
    'Not proven here:', ...r.clone.provenOn.notHere.map((x) => `- ${x}`), '',
    'Strongest lock the rehearsal took on each live object:', '',
    '| mode | kind | objects |', '|---|---|---|',
    ...rows.map(([k, names]) => `| ${k.split('|')[0]} | ${k.split('|')[1]} | ${names.join(', ')} |`),
    ...(r.liveLocks.catalogs.length ? ['', `System catalogs: ${r.liveLocks.catalogs.map((x) => `${x.catalog} ${x.mode}`).join(', ')}.`] : []),
  ];
}

/** Write `<base>.md` and `<base>.json`; returns both paths. */
export function writeReport(r: RehearsalReport, file: string): string[] {
  const base = file.replace(/\.(md|json)$/i, '');
  fs.mkdirSync(path.dirname(path.resolve(base)), { recursive: true });
  const md = `${base}.md`;
  const json = `${base}.json`;
  fs.writeFileSync(md, renderMarkdown(r));
  fs.writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  return [md, json];
}
