// The custom search attributes that make stuck births findable in the Temporal UI (DESIGN §4).
// Free of I/O: shared by workflows (upsert), the client (visibility queries) and the stack (registration).
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const BirthStage = defineSearchAttributeKey('BirthStage', SearchAttributeType.KEYWORD);
export const EntityCode = defineSearchAttributeKey('EntityCode', SearchAttributeType.KEYWORD);
export const BirthCollection = defineSearchAttributeKey('BirthCollection', SearchAttributeType.KEYWORD);
export const PermitId = defineSearchAttributeKey('PermitId', SearchAttributeType.KEYWORD);
export const BreakGlass = defineSearchAttributeKey('BreakGlass', SearchAttributeType.BOOL);
/** The apply packet's workflow: where it stands, `<STAGE>:<NN>` (e.g. `WAITING_FOR_OWNER:07`; contracts/packet.ts). */
export const PacketStep = defineSearchAttributeKey('PacketStep', SearchAttributeType.KEYWORD);

/** Name → CLI type name, as `temporal server start-dev --search-attribute NAME=TYPE` wants it. */
export const searchAttributeCliTypes: Record<string, 'Keyword' | 'Bool'> = {
  BirthStage: 'Keyword',
  EntityCode: 'Keyword',
  BirthCollection: 'Keyword',
  PermitId: 'Keyword',
  BreakGlass: 'Bool',
  PacketStep: 'Keyword',
};
