// The names the CLI and the Web UI use to talk to a packet workflow. Shared by the workflows
// (handlers, workflows/packet-record.ts) and the client (client/packet.ts); the payloads are the zod
// schemas in contracts/packet.ts.
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { PacketAck, PacketApproval, PacketDecision, PacketState } from '../contracts/packet.ts';

/** The full state: stage, step, what it waits for, the steps done, the entry and door hashes. */
export const packetStateQuery = defineQuery<PacketState>('packetState');
/** `birthgate approve`: the owner opens the one-way door. Refused unless the packet waits there. */
export const approvePacketUpdate = defineUpdate<PacketAck, [PacketApproval]>('approvePacket');
/** `birthgate packet retry | stop`: an operator's answer to a parked packet; stop also withdraws one at the door. */
export const decidePacketUpdate = defineUpdate<PacketAck, [PacketDecision]>('decidePacket');
