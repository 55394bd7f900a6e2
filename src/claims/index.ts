export { ClaimCheck, DEFAULT_CLAIM_THRESHOLD, CLAIM_HEADER_ROOM } from "./claim-check.js";
export type {
  ClaimCheckOptions,
  CheckInOptions,
  CheckedIn,
  CheckOutOptions,
  ClaimMessage,
  ResolvedMessage,
  ConsumeOptions,
  PublishClaimOptions,
  PublishJetStreamClaimOptions,
  ExpireOptions,
} from "./claim-check.js";
export { CLAIM_HEADER, CLAIM_KEY_HEADER, encodeReference, decodeReference } from "./reference.js";
export type { ClaimReference } from "./reference.js";
