// The API types and schemas of every kind tsvirt serves. Imports nothing outside api/ (and lib/).

export * from "./apiextensions/v1/crd-schema.js";
export * from "./apps/v1/controllerrevision.js";
export * from "./authorization/v1/ssar.js";
export * from "./autoscaling/v2/hpa.js";
export * from "./builtin.js";
export * from "./cdi/upload/v1beta1/uploadtokenrequest.js";
export * from "./cdi/v1beta1/cdiconfig.js";
export * from "./cdi/v1beta1/datavolume.js";
export * from "./coordination/v1/lease.js";
export * from "./core/v1/common.js";
export * from "./core/v1/kinds.js";
export * from "./core/v1/pod.js";
export * from "./crds.js";
export * from "./kubevirt/v1/kubevirt.js";
export * from "./kubevirt/v1/unimplemented.js";
export * from "./kubevirt/v1/vm.js";
export * from "./kubevirt/v1/vmi.js";
export * from "./kubevirt/v1/well-known.js";
export * from "./meta/v1/crd.js";
export * from "./meta/v1/object-meta.js";
export * from "./meta/v1/quantity.js";
export * from "./meta/v1/schema.js";
export * from "./migrations/v1alpha1/policy.js";
export * from "./pool/v1beta1/pool.js";
export * from "./snapshot/v1beta1/snapshot.js";
export * from "./storage/v1/storage.js";
