// The entry state of KB-2590 §1–§9 as the probes read it live. One zod schema: the probe parses
// every section through it, and `birthgate verify --json` prints exactly this shape.
import { z } from 'zod';

const count = z.number().int().nonnegative();

export const ChannelSchema = z.object({
  serverVersion: z.string(),
  serverVersionNum: z.number().int(),
  database: z.string(),
  currentUser: z.string(),
  rolsuper: z.boolean(),
  transactionReadOnly: z.string(),
  tempCreateDropInRollback: z.boolean(),
});

export const BirthRegistrySchema = z.object({
  columnCount: count,
  columns: z.array(z.object({ name: z.string(), type: z.string(), notNull: z.boolean(), default: z.string().nullable() })),
  constraints: z.array(z.object({ name: z.string(), type: z.string(), definition: z.string() })),
  indexes: z.array(z.object({ name: z.string(), definition: z.string(), unique: z.boolean(), partial: z.boolean() })),
  statusCheck: z.boolean(),
  statusValues: z.array(z.object({ status: z.string().nullable(), rows: count })),
  rowCount: count,
  distinctCodes: count,
  distinctCollections: count,
  owner: z.string(),
});

export const CompositeSchema = z.object({
  codesInMultipleCollections: count,
  compositeDuplicates: count,
  nullCollectionRows: count,
  fkReferences: count,
  onConflictEntityCodeFunctions: z.array(z.string()),
});

export const FingerprintSchema = z.object({
  name: z.string(),
  oid: z.number().int().nullable(),
  md5: z.string().nullable(),
  triggerBindings: count,
});

export const TriggerSchema = z.object({
  name: z.string(),
  timing: z.string(),
  events: z.string(),
  function: z.string(),
  args: z.string().nullable(),
  enabled: z.string(),
  constraint: z.boolean(),
});

export const FamiliesSchema = z.object({
  dotTools: z.object({
    columnCount: count,
    codeField: z.string().nullable(),
    rowCount: count,
    unborn: count,
    owner: z.string(),
    codeRuleFailing: count,
    triggers: z.array(TriggerSchema),
  }),
  entitySpecies: z.object({ rowCount: count, codeRuleFailing: count }),
  bindings: z.object({
    birthAutoTriggers: count,
    birthAutoTables: count,
    birthAutoIdTriggers: count,
    birthGateTables: z.array(z.string()),
  }),
});

export const InformationUnitSchema = z.object({
  layer1: z.object({ trigger: z.string(), function: z.string(), before: z.boolean() }).nullable(),
  layer2: z
    .object({
      trigger: z.string(),
      function: z.string(),
      constraintTrigger: z.boolean(),
      deferrable: z.boolean(),
      initiallyDeferred: z.boolean(),
    })
    .nullable(),
  ledger: z.object({ fn_iu_gate_open: z.boolean(), iu_gate_transition: z.boolean(), fn_dot_iu_command_log: z.boolean() }),
});

export const GovernanceSchema = z.object({
  objects: z.record(z.string(), z.boolean()),
  handoffObjectBorn: z.object({ active: z.boolean(), domain: z.string(), lane: z.string() }).nullable(),
  ospaRows: count,
  changelogRows: count,
  eventPendingRows: count,
  candidateRows: count,
});

export const BlockDimSchema = z.object({ dim: z.string(), count: count, detail: z.string() });

export const SafetyNetSchema = z.object({
  objects: z.record(z.string(), z.boolean()),
  blockDims: z.array(BlockDimSchema),
  phantomSynthetic: count,
  rpCleanupPolicy: z.array(z.string()),
  gucs: z.object({ 'app.bypass_birth_gate': z.string().nullable(), 'app.birth_gate_mode': z.string().nullable() }),
});

export const DdlGuardSchema = z.array(
  z.object({ name: z.string(), event: z.string(), enabled: z.string(), function: z.string(), tags: z.array(z.string()).nullable() }),
);

export const EntryStateSchema = z.object({
  probedAt: z.string(),
  /** The scale a `birthgate world load` marked this estate with, if any. */
  worldScale: z.enum(['test', 'prod']).nullable(),
  channel: ChannelSchema, // §1
  birthRegistry: BirthRegistrySchema, // §2
  composite: CompositeSchema, // §3
  fingerprints: z.array(FingerprintSchema), // §4
  families: FamiliesSchema, // §4 bindings, §5
  informationUnit: InformationUnitSchema, // §6
  governance: GovernanceSchema, // §7
  safetyNet: SafetyNetSchema, // §8
  ddlGuard: DdlGuardSchema, // §9
});

export type EntryState = z.infer<typeof EntryStateSchema>;
export type BlockDim = z.infer<typeof BlockDimSchema>;
