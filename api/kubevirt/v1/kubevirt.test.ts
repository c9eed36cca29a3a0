import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultConfiguration, effectiveConfiguration, featureGateEnabled } from "./kubevirt.js";

// (that the defaults fit the schema is checked by the API server's test: it writes them back with Strict validation)
test("defaultConfiguration() holds KubeVirt's defaults", () => {
  const d = defaultConfiguration();
  assert.equal(d.migrations?.parallelMigrationsPerCluster, 5);
  assert.equal(d.migrations?.parallelOutboundMigrationsPerNode, 2);
  assert.equal(d.migrations?.completionTimeoutPerGiB, 150);
  assert.equal(d.migrations?.progressTimeout, 150);
  assert.equal(d.migrations?.bandwidthPerMigration, "0Mi");
  assert.equal(d.migrations?.nodeDrainTaintKey, "kubevirt.io/drain");
  assert.equal(d.evictionStrategy, "None");
  assert.equal(d.vmRolloutStrategy, "LiveUpdate");
  assert.equal(d.liveUpdateConfiguration?.maxHotplugRatio, 4);
  assert.equal(d.developerConfiguration?.memoryOvercommit, 100);
  assert.equal(d.machineType, "q35");
  // a fresh copy every time: callers may change theirs
  d.machineType = "pc";
  assert.equal(defaultConfiguration().machineType, "q35");
});

test("effectiveConfiguration() merges the object's configuration over the defaults", () => {
  assert.deepEqual(effectiveConfiguration(undefined), {
    ...defaultConfiguration(),
    migrations: { ...defaultConfiguration().migrations, allowWorkloadDisruption: false },
  });
  const cfg = effectiveConfiguration({
    spec: {
      configuration: {
        migrations: { allowPostCopy: true, parallelMigrationsPerCluster: 1 },
        developerConfiguration: { featureGates: ["LiveMigration"], memoryOvercommit: null },
        evictionStrategy: "LiveMigrate",
      },
    },
  });
  assert.equal(cfg.migrations?.parallelMigrationsPerCluster, 1);
  assert.equal(cfg.migrations?.parallelOutboundMigrationsPerNode, 2, "untouched defaults stay");
  assert.equal(cfg.migrations?.allowWorkloadDisruption, true, "follows allowPostCopy when unset");
  assert.equal(cfg.evictionStrategy, "LiveMigrate");
  assert.equal(cfg.developerConfiguration?.memoryOvercommit, undefined, "null removes");
  assert.equal(featureGateEnabled(cfg, "LiveMigration"), true);
  assert.equal(featureGateEnabled(cfg, "Snapshot"), false);
  const off = effectiveConfiguration({
    spec: { configuration: { developerConfiguration: { featureGates: ["A"], disabledFeatureGates: ["A"] } } },
  });
  assert.equal(featureGateEnabled(off, "A"), false);
});
