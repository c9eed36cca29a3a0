// cdi.kubevirt.io/v1beta1 CDIConfig (containerized-data-importer-api core/v1beta1 types.go): the cluster-scoped
// singleton `config` the DV controller keeps; its status tells clients (virtctl image-upload) where uploads go.
import type { Static } from "@sinclair/typebox";
import { ResourceRequirements } from "../../core/v1/common.js";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Int32, ListOf, MapOf, Preserve, Str, Struct } from "../../meta/v1/schema.js";

const ImportProxy = Struct({ HTTPProxy: Str, HTTPSProxy: Str, noProxy: Str, trustedCAProxy: Str });
const FilesystemOverhead = Struct({ global: Str, storageClass: MapOf(Str) });
const LocalObjectReference = Struct({ name: Str });

export const CDIConfigSpec = Struct({
  uploadProxyURLOverride: Str,
  importProxy: ImportProxy,
  scratchSpaceStorageClass: Str,
  podResourceRequirements: ResourceRequirements,
  featureGates: ListOf(Str),
  filesystemOverhead: FilesystemOverhead,
  preallocation: Bool,
  insecureRegistries: ListOf(Str),
  dataVolumeTTLSeconds: Int32,
  tlsSecurityProfile: Preserve(),
  imagePullSecrets: ListOf(LocalObjectReference),
  logVerbosity: Int32,
});
export type CDIConfigSpec = Static<typeof CDIConfigSpec>;

export const CDIConfigStatus = Struct({
  uploadProxyURL: Str,
  uploadProxyCA: Str,
  importProxy: ImportProxy,
  scratchSpaceStorageClass: Str,
  defaultPodResourceRequirements: ResourceRequirements,
  filesystemOverhead: FilesystemOverhead,
  preallocation: Bool,
  imagePullSecrets: ListOf(LocalObjectReference),
});
export type CDIConfigStatus = Static<typeof CDIConfigStatus>;

export const CDIConfig = Struct({ ...TypeMeta, spec: CDIConfigSpec, status: CDIConfigStatus });
export type CDIConfig = Static<typeof CDIConfig>;
