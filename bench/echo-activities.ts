// No-op activities for the echo workflow: what Temporal costs with nothing to do.
export const echoActivities = {
  async noop(): Promise<void> {},
};
