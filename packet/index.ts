// The packet runner's public surface (issue 3): what the CLI, the rehearsal and, later, the
// Temporal activities of the applyPacket workflow call.
export { applyPacket, rollbackPacket, entryCheck, prove, type ApplyOptions, type ApplyResult, type RollbackOptions, type RollbackResult, type Proof } from './apply.ts';
export { applyStep, rollbackStep, verifyStep, ApprovalSchema, type StepOutcome, type StepRunOptions } from './step-runner.ts';
export { discoverSteps, findStep, type PacketStep, type StepMeta } from './steps.ts';
export { catalogFingerprint, fingerprintHash, diffFingerprints, type Fingerprint } from './fingerprint.ts';
export { checkEntry, governedHash, governedProjection, type DriftReport } from './drift.ts';
export { takeBackup, type BackupResult } from './backup.ts';
export { PacketError, PacketFailure } from './errors.ts';
export { readRun, type LedgerRun } from './ledger.ts';
export type { PacketEvent, OnEvent } from './events.ts';
