// CDI's upload API on the embedded API server: UploadTokenRequest (signed, short-lived tokens) and the upload proxy
// that streams an image to the upload server of its DataVolume's node.
export { isUploadPath, nodeUploadPath, UPLOAD_POD_LABEL, UPLOAD_POD_ROLE, uploadPodOf, uploadProxy } from "./proxy.js";
export {
  loadOrCreateUploadKey,
  UPLOAD_TOKEN_TTL_SECONDS,
  type UploadClaim,
  UploadTokens,
  uploadKeyPath,
  type VerifyResult,
} from "./token.js";
export { uploadTokenRequestHandler } from "./token-request.js";
