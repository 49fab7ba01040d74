// The live entry state against the figures a world declares (fixtures/figures.ts). Used by
// `birthgate verify` and the tests; every check names the KB-2590 fact it holds to.
import type { WorldFigures } from '../fixtures/figures.ts';
import type { EntryState } from './schema.ts';

export type FigureCheck = { check: string; expected: string | number | boolean; actual: string | number | boolean | null; ok: boolean };

export function compareWithFigures(s: EntryState, f: WorldFigures): FigureCheck[] {
  const dims = new Map(s.safetyNet.blockDims.map((d) => [d.dim, d.count]));
  const checks: Array<Omit<FigureCheck, 'ok'>> = [
    { check: '§2 birth_registry rows', expected: f.births, actual: s.birthRegistry.rowCount },
    { check: '§2 distinct entity_codes', expected: f.distinctCodes, actual: s.birthRegistry.distinctCodes },
    { check: '§2 distinct collections', expected: f.collections, actual: s.birthRegistry.distinctCollections },
    { check: '§2 birth_registry columns', expected: f.birthRegistryColumns, actual: s.birthRegistry.columnCount },
    { check: '§2 constraints', expected: [...f.birthRegistryConstraints].sort().join(','), actual: s.birthRegistry.constraints.map((c) => c.name).sort().join(',') },
    { check: '§2 indexes', expected: [...f.birthRegistryIndexes].sort().join(','), actual: s.birthRegistry.indexes.map((i) => i.name).sort().join(',') },
    { check: '§2 status values', expected: `born×${f.births}`, actual: s.birthRegistry.statusValues.map((v) => `${v.status}×${v.rows}`).join(',') },
    { check: '§2 status CHECK', expected: false, actual: s.birthRegistry.statusCheck },
    { check: '§2 owner', expected: f.owner, actual: s.birthRegistry.owner },
    { check: '§3 codes in >1 collection', expected: f.composite.codesInMultipleCollections, actual: s.composite.codesInMultipleCollections },
    { check: '§3 composite duplicates', expected: f.composite.compositeDuplicates, actual: s.composite.compositeDuplicates },
    { check: '§3 null collection_name', expected: f.composite.nullCollectionRows, actual: s.composite.nullCollectionRows },
    { check: '§3 FK references', expected: f.composite.fkReferences, actual: s.composite.fkReferences },
    { check: '§3 ON CONFLICT (entity_code) functions', expected: [...f.onConflictEntityCodeFunctions].sort().join(','), actual: [...s.composite.onConflictEntityCodeFunctions].sort().join(',') },
    { check: '§4 fn_birth_registry_auto triggers', expected: f.birthAutoTriggers, actual: s.families.bindings.birthAutoTriggers },
    { check: '§4 tables behind fn_birth_gate', expected: f.birthGateTables, actual: s.families.bindings.birthGateTables.length },
    { check: '§5 dot_tools rows', expected: f.dotTools.rows, actual: s.families.dotTools.rowCount },
    { check: '§5 dot_tools columns', expected: f.dotTools.columns, actual: s.families.dotTools.columnCount },
    { check: '§5 dot_tools triggers', expected: f.dotTools.triggers, actual: s.families.dotTools.triggers.length },
    { check: '§5 dot_tools unborn', expected: f.dotTools.unborn, actual: s.families.dotTools.unborn },
    { check: '§5 dot_tools failing the code rule', expected: f.dotTools.codeRuleFailing, actual: s.families.dotTools.codeRuleFailing },
    { check: '§5 dot_tools owner', expected: f.owner, actual: s.families.dotTools.owner },
    { check: '§5 entity_species rows', expected: f.entitySpecies.rows, actual: s.families.entitySpecies.rowCount },
    { check: '§5 entity_species failing the code rule', expected: f.entitySpecies.codeRuleFailing, actual: s.families.entitySpecies.codeRuleFailing },
    { check: '§6 layer 2 deferrable, initially deferred', expected: true, actual: Boolean(s.informationUnit.layer2?.deferrable && s.informationUnit.layer2.initiallyDeferred) },
    { check: '§7 handoff.object_born active', expected: f.handoffObjectBorn.active, actual: s.governance.handoffObjectBorn?.active ?? null },
    { check: '§7 handoff.object_born domain/lane', expected: `${f.handoffObjectBorn.domain}/${f.handoffObjectBorn.lane}`, actual: s.governance.handoffObjectBorn ? `${s.governance.handoffObjectBorn.domain}/${s.governance.handoffObjectBorn.lane}` : null },
    { check: '§7 OSPA rows', expected: f.ospaRows, actual: s.governance.ospaRows },
    { check: '§7 registry_changelog rows', expected: f.changelogRows, actual: s.governance.changelogRows },
    ...Object.entries(f.blockDims).map(([dim, count]) => ({ check: `§8 BLOCK ${dim}`, expected: count, actual: dims.get(dim) ?? null })),
    { check: '§8 synthetic phantoms', expected: f.phantomSynthetic, actual: s.safetyNet.phantomSynthetic },
    { check: '§8 app.bypass_birth_gate', expected: 'unset', actual: s.safetyNet.gucs['app.bypass_birth_gate'] ?? 'unset' },
    { check: '§8 app.birth_gate_mode', expected: 'unset', actual: s.safetyNet.gucs['app.birth_gate_mode'] ?? 'unset' },
    { check: '§9 DDL guard present', expected: true, actual: s.ddlGuard.length > 0 },
  ];
  return checks.map((c) => ({ ...c, ok: c.expected === c.actual }));
}
