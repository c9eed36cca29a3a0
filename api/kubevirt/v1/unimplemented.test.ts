import assert from "node:assert/strict";
import { test } from "node:test";
import { UNIMPLEMENTED_VMI_FIELDS, unimplementedFields, unimplementedKubeVirtFields } from "./unimplemented.js";

test("unimplementedFields() names each set field with its full path, list items indexed", () => {
  const spec = {
    domain: {
      devices: {
        gpus: [{ name: "g" }],
        interfaces: [
          { name: "default", masquerade: {} },
          { name: "x", sriov: {} },
        ],
        disks: [],
      },
      cpu: { dedicatedCpuPlacement: false },
    },
    networks: [{ name: "default", pod: {} }],
    livenessProbe: { tcpSocket: { port: 22 } },
  };
  assert.deepEqual(unimplementedFields(spec, "spec.template.spec"), [
    "spec.template.spec.domain.devices.gpus",
    "spec.template.spec.domain.devices.interfaces[1].sriov",
    "spec.template.spec.livenessProbe",
  ]);
  assert.deepEqual(unimplementedFields({ domain: { devices: {} } }), []);
  assert.ok(UNIMPLEMENTED_VMI_FIELDS.length > 20);
});

test("unimplementedKubeVirtFields() names each set top-most path nothing acts on; defaults-only specs are quiet", () => {
  assert.deepEqual(
    unimplementedKubeVirtFields({
      certificateRotateStrategy: {},
      workloadUpdateStrategy: {},
      configuration: {
        developerConfiguration: { featureGates: [] },
        machineType: "pc-q35-8.2",
        network: { defaultNetworkInterface: "masquerade", permitSlirpInterface: false },
        migrations: { allowPostCopy: true, parallelMigrationsPerCluster: 2 },
        evictionStrategy: "LiveMigrate",
      },
      imageTag: "v1",
    }),
    // the migration limits and settings (post-copy too) and the eviction strategy are acted on
    ["spec.imageTag"],
  );
  assert.deepEqual(
    unimplementedKubeVirtFields({ configuration: { developerConfiguration: { featureGates: [] } } }),
    [],
  );
});
