// The packet worker's workflows entry point (what workers/packet-worker.ts bundles): the apply packet
// and its rollback. Deliberately NOT in workflows/index.ts nor workers/production-workflows.ts: their
// activities need the estate's admin connection, which the long-running admission worker (as
// birthgate_worker) must never hold, so they run on their own task queue in a packet worker that the
// CLI hosts while it drives the packet (README "The packet as a workflow").
export { applyPacket } from '../workflows/apply-packet.ts';
export { packetRollback } from '../workflows/packet-rollback.ts';
