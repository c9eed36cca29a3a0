// Protobuf request bodies as stock kubectl sends them (`create namespace|configmap|secret|serviceaccount|service`,
// `auth can-i`), decoded to JSON objects. Responses stay JSON: kubectl accepts it for these requests.
export { type DecodedObject, decodeProtobuf, isProtobufContentType, protobufContentType } from "./decode.js";
export { protobufMessages } from "./messages.js";
