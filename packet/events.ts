// What a run reports while it works: the CLI prints these, a Temporal activity heartbeats them.
import type { DriftCheck } from './drift.ts';
import type { FingerprintDiff } from './fingerprint.ts';

export type StepAction = 'up' | 'down' | 'skip';

export type PacketEvent =
  | { type: 'run'; runId: string; kind: 'apply' | 'rollback' | 'step'; target?: number }
  | { type: 'backup'; dir: string; files: string[]; pgDump: { used: boolean; detail: string } }
  | { type: 'drift'; ok: boolean; appliedThrough: number; checks: DriftCheck[] }
  | { type: 'step'; step: number; title: string; phase: 'start' | 'skip' | 'done' | 'refused' | 'failed'; action: StepAction; detail?: string; attempts?: number; ms?: number }
  | { type: 'attempt'; step: number; attempt: number; ok: boolean; sqlstate?: string; message?: string; backoffMs?: number; ms: number }
  | { type: 'leftover'; step: number; index: string }
  | { type: 'notice'; step: number; message: string }
  | { type: 'rollback'; reason: string; steps: number[] }
  | { type: 'proof'; equal: boolean; entryHash: string; exitHash: string; diff: FingerprintDiff[] }
  | { type: 'stopped'; reason: string };

export type OnEvent = (e: PacketEvent) => void;
