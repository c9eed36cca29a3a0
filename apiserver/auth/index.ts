// Authentication (bearer tokens → userInfo) and the static authorization table of the embedded API server.
export {
  authorize,
  type Decision,
  forbiddenMessage,
  type ResourceAttributes,
  type Rule,
  reviewAccess,
  SERVICE_ACCOUNT_RULES,
} from "./authorize.js";
export {
  ADMIN,
  Authenticator,
  type AuthenticatorOptions,
  COMPONENTS,
  componentKubeconfigPath,
  type Identity,
  identitiesDir,
  loadOrCreateIdentities,
  memoryIdentities,
  serviceAccountInfo,
  tokenPath,
  type UserInfo,
} from "./identity.js";
