// The admission's wire contract for DOTs in any language (issue 10 §6): a JSON Schema of the workflow
// input, the operator updates and signals, the state query and the result, generated from the zod
// contract (contracts/admission.ts), plus the names a client needs (workflow type, id format, task
// queue, conflict policies). `contracts/wire/admission.schema.json` is this, written by
// `npm run contract`; test/wire-contract.test.ts fails when the committed file and the zod contract differ.
// Free of I/O.
import * as z from 'zod/mini';
import {
  ADMISSION_WORKFLOW_PREFIX,
  AdmissionInput,
  AdmissionResult,
  AdmissionState,
  AttachSignal,
  BreakGlassSignal,
  CancelSignal,
  DecisionAck,
  FailureType,
  RetrySignal,
  RollbackSignal,
} from './admission.ts';

/** The refinements zod cannot express (code points, unprintable characters) are in each string's description. */
const schemaOf = (s: z.ZodMiniType, io: 'input' | 'output') => {
  const { $schema: _, ...rest } = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
};

export function wireContract(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'birthgate dotBirthAdmit wire contract',
    description:
      'Start, attach to and resolve a birth admission from any Temporal SDK or the temporal CLI. Payloads are JSON (the default data converter). ' +
      'Generated from contracts/admission.ts by `npm run contract`; do not edit by hand.',
    'x-birthgate': {
      workflowType: 'dotBirthAdmit',
      workflowId: `${ADMISSION_WORKFLOW_PREFIX}:<collection>:<code> — the admission refuses to run under any other id`,
      taskQueue: 'birthgate-admission (BIRTHGATE_TASK_QUEUE)',
      start: {
        input: '#/$defs/AdmissionInput (one argument)',
        workflowIdConflictPolicy: 'USE_EXISTING (a second start attaches)',
        workflowIdReusePolicy: 'ALLOW_DUPLICATE_FAILED_ONLY (a finalized admission is final)',
        searchAttributes: { EntityCode: 'the code (Keyword)', BirthCollection: 'the collection (Keyword)' },
      },
      result: '#/$defs/AdmissionResult; failures are ApplicationFailure with a type from failureTypes (ALREADY_BORN, ADMISSION_CANCELLED, …)',
      updates: {
        retryAdmission: { input: '#/$defs/RetrySignal', output: '#/$defs/DecisionAck' },
        breakGlassAdmission: {
          input: '#/$defs/BreakGlassSignal',
          output: '#/$defs/DecisionAck',
          note: 'breakGlassId must name the entry an operator opened first with fn_break_glass_open (role birthgate_operator)',
        },
        cancelAdmission: { input: '#/$defs/CancelSignal', output: '#/$defs/DecisionAck' },
        rollbackAdmission: { input: '#/$defs/RollbackSignal', output: '#/$defs/DecisionAck' },
      },
      signals: {
        attach: '#/$defs/AttachSignal',
        retry: '#/$defs/RetrySignal',
        cancel: '#/$defs/CancelSignal',
        breakGlass: '#/$defs/BreakGlassSignal',
        rollback: '#/$defs/RollbackSignal',
      },
      queries: { state: '#/$defs/AdmissionState' },
      failureTypes: Object.values(FailureType),
    },
    $defs: {
      AdmissionInput: schemaOf(AdmissionInput, 'input'),
      AdmissionResult: schemaOf(AdmissionResult, 'output'),
      AdmissionState: schemaOf(AdmissionState, 'output'),
      AttachSignal: schemaOf(AttachSignal, 'input'),
      RetrySignal: schemaOf(RetrySignal, 'input'),
      CancelSignal: schemaOf(CancelSignal, 'input'),
      RollbackSignal: schemaOf(RollbackSignal, 'input'),
      BreakGlassSignal: schemaOf(BreakGlassSignal, 'input'),
      DecisionAck: schemaOf(DecisionAck, 'output'),
    },
  };
}

export const wireContractJson = (): string => `${JSON.stringify(wireContract(), null, 2)}\n`;
