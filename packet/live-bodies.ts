// Issue 9 item 5: the live bodies of the functions KB-7D57 steps 4 and 5 patch in place. On a real
// estate those bodies are production's (KB-2590 §4 md5s), not the project's reconstruction in
// sql/baseline: a static up would replace production's function with ours, and a static down would
// not bring the entry body back. So, for a step whose meta.json names a `liveBody` function:
//  - just before its up, the runner records the function as it is live in the ledger
//    (birthgate_ledger.live_body: OID, owner, md5 of prosrc and of pg_get_functiondef, definition, ACL);
//  - the up.sql derives the patch from that live body (its checked transformation; CONTRACT.md) and is
//    told the captured md5, so what it edits is what was captured, and the owner's expected md5 if any;
//  - the down.sql is handed the captured definition and restores it byte for byte (md5 checked in SQL).
// This module is the runner's half: which steps, the settings each file reads, the ledger marks.
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { z } from 'zod';
import { PacketError, PacketFailure } from './errors.ts';
import { captureLiveBody, latestLiveBody, markLiveBodyPatched, markLiveBodyRestored, type LiveBody } from './ledger.ts';
import type { PacketStep } from './steps.ts';

/** meta.json `"liveBody": { "function": "public.fn_x()" }` — the function the step patches from its live body. */
const LiveBodyMetaSchema = z.object({
  liveBody: z.object({ function: z.string().regex(/^public\.[a-z_][a-z0-9_]*\(\)$/, 'public.<name>() of a function without arguments') }).optional(),
});

/** Owner-reviewed md5s by function name: md5(pg_get_functiondef(oid)), KB-2590 §4's measure. */
export const ExpectedMd5Schema = z.record(z.string().regex(/^[a-z_][a-z0-9_]*$/, 'a function name'), z.string().regex(/^[0-9a-f]{32}$/, 'an md5 is 32 hex digits'));
export type ExpectedMd5 = z.infer<typeof ExpectedMd5Schema>;

/** KB-2590 §4: production's entry md5s, read live on 2026-06-03 — what an owner applying to that estate expects. */
export const KB_2590_ENTRY_MD5: ExpectedMd5 = {
  fn_birth_registry_auto: '1f729b3571a74963089bb3ef388217f3',
  fn_birth_registry_auto_id: '3f3515dedf1d5bb0f0f66711297b5b5c',
};

/** The function `s` patches from its live body (its meta.json `liveBody`), or undefined for any other step. */
export function liveBodyFunction(s: PacketStep): string | undefined {
  const file = path.join(s.dir, 'meta.json');
  if (!fs.existsSync(file)) return undefined;
  const parsed = LiveBodyMetaSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`apply packet: step ${s.step} meta.json liveBody is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data.liveBody?.function;
}

const functionName = (signature: string) => signature.replace(/^public\./, '').replace(/\(\)$/, '');

export type UpPlan = {
  capture: LiveBody | undefined;
  /** Transaction-local settings for up.sql: birthgate.live_body_md5 (the capture), birthgate.expect_md5 (the owner's). */
  settings: Record<string, string>;
  /** After the up committed: the ledger notes the md5 it left. */
  committed(): Promise<void>;
};

/**
 * Before a liveBody step's up: capture the function as it is live (autocommit, so the record stays
 * whatever the up does). A missing function is not captured: the up itself refuses it (BG428).
 */
export async function prepareUp(pool: pg.Pool, s: PacketStep, ctx: { runId: string; stepRowId: string; expectMd5?: unknown }): Promise<UpPlan | undefined> {
  const signature = liveBodyFunction(s);
  if (!signature) return undefined;
  const expect = ExpectedMd5Schema.optional().safeParse(ctx.expectMd5);
  if (!expect.success) {
    throw new PacketError(PacketFailure.BadRequest, `expected md5s: ${expect.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ')}`, { runId: ctx.runId, step: s.step });
  }
  const expected = expect.data?.[functionName(signature)];
  const capture = await captureLiveBody(pool, { runId: ctx.runId, stepRowId: ctx.stepRowId, step: s.step, signature, expectedMd5: expected });
  const settings: Record<string, string> = {};
  if (capture) settings['birthgate.live_body_md5'] = capture.defMd5;
  if (expected) settings['birthgate.expect_md5'] = expected;
  return { capture, settings, committed: async () => { if (capture) await markLiveBodyPatched(pool, capture.captureId); } };
}

export type DownPlan = {
  /** For down.sql: the captured definition, md5, OID and ACL; empty when there is no capture to restore. */
  settings: Record<string, string>;
  /** What the down restores, for the step's detail. */
  note: string;
  /** After the down committed: the capture is marked restored by this run. */
  restored(runId: string): Promise<void>;
};

/**
 * Before a liveBody step's down: the newest capture of its function whose up was not refused
 * (ledger.ts latestLiveBody), unless that one was restored already — then the step was applied again
 * without the runner (by hand), there is no record of the body it replaced, and down.sql falls back
 * to the project's reconstruction, which the note says.
 */
export async function prepareDown(pool: pg.Pool, s: PacketStep): Promise<DownPlan | undefined> {
  const signature = liveBodyFunction(s);
  if (!signature) return undefined;
  const c = await latestLiveBody(pool, signature);
  if (!c || c.restoredRunId !== null) {
    return {
      settings: {},
      note: `no captured entry body of ${signature} for this apply in the ledger: restored the project's reconstruction (sql/baseline), not necessarily the estate's own body`,
      restored: async () => undefined,
    };
  }
  return {
    settings: {
      'birthgate.live_body_def': c.definition,
      'birthgate.live_body_md5': c.defMd5,
      'birthgate.live_body_oid': c.oid,
      'birthgate.live_body_acl': c.acl ?? '',
    },
    note: `restored the body captured at entry (capture ${c.captureId} of run ${c.runId}, md5 ${c.defMd5})`,
    restored: (runId) => markLiveBodyRestored(pool, c.captureId, runId),
  };
}
