// dotBirthRollback — undo a finalized admission (DESIGN §4 "after FINALIZED a rollback retires the
// birth instead of deleting history"). A separate small workflow because dotBirthAdmit completes at
// FINALIZED; the client starts it with the permit id from the admission's result. Idempotent: the
// retire is, and its id is derived from (collection, code) with USE_EXISTING.
import { ApplicationFailure, setCurrentDetails, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { admissionWorkflowId, describeIssues, FailureType, RollbackInput, type RollbackResult } from '../contracts/admission.ts';
import { BirthCollection, BirthStage, EntityCode, PermitId } from '../contracts/search-attributes.ts';
import { admissionActivities } from './activity-options.ts';

export async function dotBirthRollback(raw: RollbackInput): Promise<RollbackResult> {
  const parsed = RollbackInput.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.create({ type: FailureType.INVALID_INPUT, message: `invalid rollback: ${describeIssues(parsed.error)}`, nonRetryable: true });
  }
  const input = parsed.data;
  const { readAdmission, retireBirth } = admissionActivities(900, 'remote');
  const show = (stage: string, details: string) => {
    upsertSearchAttributes([
      { key: BirthStage, value: stage },
      { key: EntityCode, value: input.code },
      { key: BirthCollection, value: input.collection },
      { key: PermitId, value: input.permitId },
    ]);
    setCurrentDetails(`**${stage}** · ${input.collection} · \`${input.code}\`\n${details}`);
  };
  show('COMPENSATING', `retiring the birth of permit ${input.permitId} for ${input.actor}`);

  // The permit must be this code's, in this collection, and FINALIZED: nothing else has a birth to retire.
  const { permit } = await readAdmission({ permitId: input.permitId });
  if (permit.entityCode !== input.code || permit.collection !== input.collection || permit.state !== 'FINALIZED') {
    throw ApplicationFailure.create({
      type: FailureType.NOT_ADMITTED,
      message: `permit ${input.permitId} is ${permit.state} for ${permit.collection}/${permit.entityCode}: no finalized birth of ${input.collection}/${input.code} to roll back`,
      nonRetryable: true,
    });
  }
  const retired = await retireBirth({ permitId: input.permitId, actor: input.actor, reason: input.reason });
  show('ROLLED_BACK', retired.detail);
  return {
    workflowId: workflowInfo().workflowId,
    admissionWorkflowId: admissionWorkflowId(input.collection, input.code),
    permitId: input.permitId,
    birthId: retired.birthId ?? permit.birthId!,
    stage: 'ROLLED_BACK',
    retiredAt: new Date().toISOString(),
  };
}
