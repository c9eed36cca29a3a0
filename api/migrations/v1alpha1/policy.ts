// migrations.kubevirt.io/v1alpha1 MigrationPolicy (cluster-scoped): per-VMI migration tuning, chosen by label
// selectors (KubeVirt's staging/src/kubevirt.io/api/migrations/v1alpha1/types.go). The selectors are plain label
// maps (every pair must match), not metav1.LabelSelectors. status is empty in KubeVirt.
import type { Static } from "@sinclair/typebox";
import { MigrationConfigurationOptions } from "../../kubevirt/v1/vmi.js";
import { TypeMeta } from "../../meta/v1/object-meta.js";
import { Bool, Empty, Int64, Quantity, StrMap, Struct } from "../../meta/v1/schema.js";

export const MigrationPolicySpec = Struct(
  {
    selectors: Struct({ namespaceSelector: StrMap, virtualMachineInstanceSelector: StrMap }),
    allowAutoConverge: Bool,
    bandwidthPerMigration: Quantity,
    completionTimeoutPerGiB: Int64,
    allowPostCopy: Bool,
    allowWorkloadDisruption: Bool,
    maxDowntimeMs: Int64,
    experimental: MigrationConfigurationOptions.properties.experimental,
  },
  ["selectors"],
);
export type MigrationPolicySpec = Static<typeof MigrationPolicySpec>;

export const MigrationPolicy = Struct({ ...TypeMeta, spec: MigrationPolicySpec, status: Empty() }, ["spec"], {
  description: "Migration settings (bandwidth, auto-converge, post-copy, completion timeout) for the VMIs it selects.",
});
export type MigrationPolicy = Static<typeof MigrationPolicy>;
