// Every workflow the admission worker runs (the bundler's entry point).
export { dotBirthAdmit, dotBirthAdmitLocal } from './dot-birth-admit.ts';
export { dotBirthRollback } from './dot-birth-rollback.ts';
export { governanceHandoff } from './handoff.ts';
export { driftWatchTick, permitExpirySweep } from './schedules.ts';
// The packet's workflows (applyPacket, packetRollback) are deliberately not here: they run in the
// packet worker on its own task queue with the admin connection (workers/packet-workflows.ts).
