// A trivial workflow that proves a Temporal server is real and keeps history (stack tests, `start`).
import { sleep } from '@temporalio/workflow';

export async function stackProbe(message: string): Promise<string> {
  await sleep(1); // one timer, so the history holds more than a start and a completion
  return `probe:${message}`;
}
