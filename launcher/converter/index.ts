// launcher/converter: VMI + host facts → typed libvirt Domain → XML. Pure, except the NoCloud ISO builder.
export {
  buildIso,
  type CloudInitSecrets,
  configDriveFiles,
  ISO_LABELS,
  type NoCloudFiles,
  noCloudFiles,
  safeRelativePath,
} from "./cloudinit.js";
export { domainName } from "./compute.js";
export type { ConverterContext, PreparedVolume } from "./context.js";
export { configurators, conversionError, convertWithProblems, vmiToDomain, vmiToDomainXml } from "./convert.js";
export { NIC_MODELS, normalizeMac } from "./network.js";
export {
  CONFIG_VOLUME_KINDS,
  contextFor,
  executePreparation,
  type NodeFacts,
  nodeFactsFromPrepared,
  type PrepareStep,
  planPreparation,
  prepareAndConvert,
} from "./prepare.js";
export { parseQuantity } from "./quantity.js";
export { diskLetters, parsePciAddress, volumeKind } from "./storage.js";
