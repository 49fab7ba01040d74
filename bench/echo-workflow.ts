// The Temporal floor for bench/admission.ts: the same shape as dotBirthAdmit (four activities in a
// row) with activities that do nothing, once as normal activities and once as local activities.
import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { echoActivities } from './echo-activities.ts';

const remote = proxyActivities<typeof echoActivities>({ startToCloseTimeout: '10s' });
const local = proxyLocalActivities<typeof echoActivities>({ startToCloseTimeout: '10s' });

/** preflight, permit, insert, finalize — as no-ops. */
export async function echoAdmission(steps: number): Promise<void> {
  for (let i = 0; i < steps; i++) await remote.noop();
}

export async function echoAdmissionLocal(steps: number): Promise<void> {
  for (let i = 0; i < steps; i++) await local.noop();
}
