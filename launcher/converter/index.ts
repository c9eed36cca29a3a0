// launcher/converter: VMI + host facts → typed libvirt Domain → XML. Pure, except the NoCloud ISO builder.
export { buildNoCloudIso, type CloudInitSecrets, type NoCloudFiles, noCloudFiles } from "./cloudinit.js";
export { domainName } from "./compute.js";
export { type ConverterContext, type PreparedVolume, podPaths } from "./context.js";
export { configurators, conversionError, convertWithProblems, vmiToDomain, vmiToDomainXml } from "./convert.js";
export { NIC_MODELS, normalizeMac } from "./network.js";
export {
  contextFor,
  executePreparation,
  type NodeFacts,
  nodeFactsFromPrepared,
  type PreparedByNode,
  type PrepareStep,
  planPreparation,
} from "./prepare.js";
export { parseQuantity } from "./quantity.js";
export { diskLetters, parsePciAddress, volumeKind } from "./storage.js";
