// pool.kubevirt.io/v1beta1 VirtualMachinePool: spec closed at the level KubeVirt's examples use; the VM template is
// the full hand-written VirtualMachineSpec.
import type { Static } from "@sinclair/typebox";
import { VirtualMachineSpec } from "../../kubevirt/v1/vm.js";
import { KubevirtCondition } from "../../kubevirt/v1/vmi.js";
import { LabelSelector, ObjectMeta, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Int32, Int64, IntOrString, ListOf, Preserve, Str, Struct } from "../../meta/v1/schema.js";

export const VirtualMachinePoolSpec = Struct(
  {
    replicas: Int32,
    selector: LabelSelector,
    virtualMachineTemplate: Struct({ metadata: ObjectMeta, spec: VirtualMachineSpec }, ["spec"]),
    paused: Bool,
    maxUnavailable: IntOrString,
    nameGeneration: Struct({ appendIndexToConfigMapRefs: Bool, appendIndexToSecretRefs: Bool }),
    updateStrategy: Preserve("Not interpreted by tsvirt yet"),
    scaleInStrategy: Preserve("Not interpreted by tsvirt yet"),
    autohealing: Preserve("Not interpreted by tsvirt yet"),
  },
  ["selector", "virtualMachineTemplate"],
);
export const VirtualMachinePoolStatus = Struct({
  replicas: Int32,
  readyReplicas: Int32,
  conditions: ListOf(KubevirtCondition),
  labelSelector: Str,
  observedGeneration: Int64,
});
export const VirtualMachinePool = Struct(
  { ...TypeMeta, spec: VirtualMachinePoolSpec, status: VirtualMachinePoolStatus },
  ["spec"],
);
export type VirtualMachinePool = Static<typeof VirtualMachinePool>;
