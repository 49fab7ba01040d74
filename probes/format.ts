// `formatEntryState`: the entry state as a readable, aligned two-column table, grouped by the
// sections of KB-2590 so an operator can hold it next to the document.
import type { EntryState } from './schema.ts';

type Row = [label: string, value: string];
type Section = { title: string; rows: Row[] };

const yes = (b: boolean) => (b ? 'yes' : 'no');
const n = (x: number) => x.toLocaleString('en-US');

export function formatEntryState(s: EntryState): string {
  const br = s.birthRegistry;
  const dt = s.families.dotTools;
  const sections: Section[] = [
    {
      title: '§1 Execution channel',
      rows: [
        ['PostgreSQL', `${s.channel.serverVersion} (${s.channel.serverVersionNum})`],
        ['database', s.channel.database],
        ['current_user', s.channel.currentUser],
        ['rolsuper', yes(s.channel.rolsuper)],
        ['transaction_read_only', s.channel.transactionReadOnly],
        ['temp create/drop in rollback', s.channel.tempCreateDropInRollback ? 'OK' : 'FAILED'],
      ],
    },
    {
      title: '§2 birth_registry schema & constraints',
      rows: [
        ['columns', String(br.columnCount)],
        ...br.constraints.map((c): Row => [`constraint ${c.name}`, c.definition]),
        ...br.indexes.map((i): Row => [`index ${i.name}`, i.partial ? `${i.definition} (partial)` : i.definition]),
        ['status values', br.statusValues.map((v) => `${v.status ?? 'NULL'} × ${n(v.rows)}`).join(', ') || '(none)'],
        ['status CHECK', yes(br.statusCheck)],
        ['rows', n(br.rowCount)],
        ['distinct entity_codes', n(br.distinctCodes)],
        ['distinct collections', n(br.distinctCollections)],
        ['owner', br.owner],
      ],
    },
    {
      title: '§3 Composite-unique feasibility',
      rows: [
        ['entity_codes in >1 collection', n(s.composite.codesInMultipleCollections)],
        ['(entity_code, collection) duplicates', n(s.composite.compositeDuplicates)],
        ['null collection_name rows', n(s.composite.nullCollectionRows)],
        ['FK references to birth_registry', n(s.composite.fkReferences)],
        [
          'functions with ON CONFLICT (entity_code)',
          `${s.composite.onConflictEntityCodeFunctions.length} (${s.composite.onConflictEntityCodeFunctions.join(', ')})`,
        ],
      ],
    },
    {
      title: '§4 Key function fingerprints (computed live)',
      rows: [
        ...s.fingerprints.map((f): Row => [
          f.name,
          f.oid === null ? 'MISSING' : `oid ${f.oid}  md5 ${f.md5}  ${f.triggerBindings} trigger(s)`,
        ]),
        ['triggers calling fn_birth_registry_auto', `${s.families.bindings.birthAutoTriggers} on ${s.families.bindings.birthAutoTables} tables`],
        ['tables behind fn_birth_gate', String(s.families.bindings.birthGateTables.length)],
      ],
    },
    {
      title: '§5 dot_tools (pilot family)',
      rows: [
        ['columns', String(dt.columnCount)],
        ['code field', dt.codeField ?? '(none)'],
        ['rows', n(dt.rowCount)],
        ['unborn', n(dt.unborn)],
        ['owner', dt.owner],
        ['codes failing ^[A-Z]+-[0-9]+$', `${n(dt.codeRuleFailing)} of ${n(dt.rowCount)} (${pct(dt.codeRuleFailing, dt.rowCount)})`],
        [
          'entity_species failing the rule',
          `${n(s.families.entitySpecies.codeRuleFailing)} of ${n(s.families.entitySpecies.rowCount)} (${pct(s.families.entitySpecies.codeRuleFailing, s.families.entitySpecies.rowCount)})`,
        ],
        [`triggers (${dt.triggers.length})`, ''],
        ...dt.triggers.map((t): Row => [
          `  ${t.name}`,
          `${t.timing} ${t.events} → ${t.function}(${t.args ?? ''})${t.enabled === 'O' ? '' : ` [tgenabled ${t.enabled}]`}`,
        ]),
      ],
    },
    {
      title: '§6 DEFERRABLE finalize reference pattern',
      rows: [
        ['layer 1', s.informationUnit.layer1 ? `${s.informationUnit.layer1.trigger} → ${s.informationUnit.layer1.function}()` : 'MISSING'],
        [
          'layer 2',
          s.informationUnit.layer2
            ? `${s.informationUnit.layer2.trigger} → ${s.informationUnit.layer2.function}()` +
              `  constraint ${yes(s.informationUnit.layer2.constraintTrigger)}, deferrable ${yes(s.informationUnit.layer2.deferrable)},` +
              ` initially deferred ${yes(s.informationUnit.layer2.initiallyDeferred)}`
            : 'MISSING',
        ],
        ...Object.entries(s.informationUnit.ledger).map(([k, v]): Row => [k, v ? 'present' : 'MISSING']),
      ],
    },
    {
      title: '§7 Governance handoff objects',
      rows: [
        ...Object.entries(s.governance.objects).map(([k, v]): Row => [k, v ? 'present' : 'MISSING']),
        [
          'handoff.object_born',
          s.governance.handoffObjectBorn
            ? `active ${s.governance.handoffObjectBorn.active}, domain ${s.governance.handoffObjectBorn.domain}, lane ${s.governance.handoffObjectBorn.lane}`
            : 'not registered',
        ],
        ['governance_build_authorization (OSPA)', `${n(s.governance.ospaRows)} rows${s.governance.ospaRows === 0 ? ' → NO-GO' : ''}`],
        ['registry_changelog rows', n(s.governance.changelogRows)],
        ['event_pending rows', n(s.governance.eventPendingRows)],
      ],
    },
    {
      title: '§8 Safety net & live BLOCK dims',
      rows: [
        ['safety-net objects', summarisePresence(s.safetyNet.objects)],
        ...s.safetyNet.blockDims.map((d): Row => [`BLOCK ${d.dim}`, `${n(d.count)}  ${d.detail}`]),
        ['synthetic phantoms (not blocking)', n(s.safetyNet.phantomSynthetic)],
        ['rp_cleanup blocked by', s.safetyNet.rpCleanupPolicy.join(', ') || '(nothing)'],
        ['app.bypass_birth_gate', s.safetyNet.gucs['app.bypass_birth_gate'] ?? 'unset'],
        ['app.birth_gate_mode', s.safetyNet.gucs['app.birth_gate_mode'] ?? 'unset (default warning)'],
      ],
    },
    {
      title: '§9 DDL guard',
      rows: s.ddlGuard.length
        ? s.ddlGuard.map((g): Row => [g.name, `${g.event} → ${g.function}()  tags: ${(g.tags ?? ['*']).join(', ')}`])
        : [['event trigger', 'none']],
    },
  ];
  const width = Math.max(...sections.flatMap((sec) => sec.rows.map(([label]) => label.length)));
  const header = `KB-2590 entry state — ${s.channel.database}${s.worldScale ? ` (world: ${s.worldScale})` : ''} — probed ${s.probedAt}`;
  return [header, ...sections.flatMap((sec) => ['', sec.title, ...sec.rows.map(([l, v]) => `  ${l.padEnd(width)}  ${v}`.trimEnd())])].join('\n');
}

function pct(part: number, whole: number): string {
  return whole === 0 ? '–' : `${((100 * part) / whole).toFixed(1)}%`;
}

function summarisePresence(objects: Record<string, boolean>): string {
  const missing = Object.entries(objects).filter(([, v]) => !v).map(([k]) => k);
  const total = Object.keys(objects).length;
  return missing.length ? `${total - missing.length}/${total} present; MISSING ${missing.join(', ')}` : `all ${total} present`;
}
