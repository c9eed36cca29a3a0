// pool.kubevirt.io/v1beta1 VirtualMachinePool: hand-written and closed like KubeVirt's OpenAPI; the VM template is
// the full VirtualMachineSpec.
import type { Static } from "@sinclair/typebox";
import { NodeSelectorRequirement } from "../../core/v1/common.js";
import { VirtualMachineSpec } from "../../kubevirt/v1/vm.js";
import { KubevirtCondition } from "../../kubevirt/v1/vmi.js";
import { LabelSelector, ObjectMeta, TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Empty, Int32, Int64, IntOrString, ListOf, Str, Struct } from "../../meta/v1/schema.js";

const SelectionPolicy = Struct({
  selectors: Struct({ labelSelector: LabelSelector, nodeSelectorRequirementMatcher: ListOf(NodeSelectorRequirement) }),
  sortPolicy: Str,
});

export const VirtualMachinePoolSpec = Struct(
  {
    replicas: Int32,
    selector: LabelSelector,
    virtualMachineTemplate: Struct({ metadata: ObjectMeta, spec: VirtualMachineSpec }),
    paused: Bool,
    maxUnavailable: IntOrString,
    nameGeneration: Struct({ appendIndexToConfigMapRefs: Bool, appendIndexToSecretRefs: Bool }),
    autohealing: Struct({ minFailingToStartDuration: Str, startUpFailureThreshold: Int64 }),
    scaleInStrategy: Struct({
      opportunistic: Struct({ statePreservation: Str }),
      proactive: Struct({ selectionPolicy: SelectionPolicy, statePreservation: Str }),
      unmanaged: Empty(),
    }),
    updateStrategy: Struct({
      opportunistic: Empty(),
      proactive: Struct({ selectionPolicy: SelectionPolicy }),
      unmanaged: Empty(),
    }),
  },
  ["selector", "virtualMachineTemplate"],
);
export const VirtualMachinePoolStatus = Struct({
  replicas: Int32,
  readyReplicas: Int32,
  conditions: ListOf(KubevirtCondition),
  labelSelector: Str,
});
export const VirtualMachinePool = Struct(
  { ...TypeMeta, spec: VirtualMachinePoolSpec, status: VirtualMachinePoolStatus },
  ["spec"],
  { description: "Keeps spec.replicas VirtualMachines, made from spec.virtualMachineTemplate." },
);
export type VirtualMachinePool = Static<typeof VirtualMachinePool>;
