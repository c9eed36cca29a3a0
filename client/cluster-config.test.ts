import assert from "node:assert/strict";
import { test } from "node:test";
import * as api from "../api/index.js";
import { ClusterConfig } from "./cluster-config.js";
import { FakeClient } from "./fake.js";
import { resources } from "./resources.js";
import type { KObject } from "./types.js";

test("ClusterConfig: defaults without the object, then the object's settings live, defaults again once deleted", async () => {
  const client = new FakeClient();
  const cc = new ClusterConfig(client, api);
  const seen: string[] = [];
  cc.onChange((c) => seen.push(c.evictionStrategy ?? ""));
  cc.start();
  await cc.waitForSync();
  assert.deepEqual(cc.current.migrations?.parallelMigrationsPerCluster, 5);
  const kv = {
    apiVersion: "kubevirt.io/v1",
    kind: "KubeVirt",
    metadata: { name: "kubevirt", namespace: "kubevirt" },
    spec: { configuration: { evictionStrategy: "LiveMigrate", migrations: { parallelMigrationsPerCluster: 1 } } },
  } as KObject;
  const created = await client.create(resources.kubevirts, "kubevirt", kv);
  const until = async (ok: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(ok());
  };
  await until(() => cc.current.evictionStrategy === "LiveMigrate");
  assert.equal(cc.current.migrations?.parallelMigrationsPerCluster, 1);
  assert.equal(cc.current.migrations?.parallelOutboundMigrationsPerNode, 2, "defaults fill the rest");
  // another object in the namespace is not the cluster's settings
  await client.create(resources.kubevirts, "kubevirt", {
    ...kv,
    metadata: { name: "other", namespace: "kubevirt" },
  } as KObject);
  await client.delete(resources.kubevirts, "kubevirt", created.metadata.name ?? "");
  await until(() => cc.current.evictionStrategy === api.defaultConfiguration().evictionStrategy);
  assert.deepEqual(seen, ["LiveMigrate", "None"]);
  await cc.stop();
});
