// virt-controller's wiring: every kind is watched once per process (one shared informer each: the scheduler, the PV
// binder, the pod-CIDR allocator and node lifecycle all read the same Node cache).
import assert from "node:assert/strict";
import { test } from "node:test";
import { FakeClient } from "../client/fake.js";
import { VirtController } from "./app.js";

test("the controller process opens one watch per resource (one shared Node informer)", async () => {
  const client = new FakeClient();
  const ctrl = new VirtController({ client });
  ctrl.startInformers();
  await ctrl.waitForSync();
  const watches = new Map<string, number>();
  for (const a of client.actions) if (a.verb === "watch") watches.set(a.resource, (watches.get(a.resource) ?? 0) + 1);
  assert.equal(watches.get("nodes"), 1, JSON.stringify([...watches]));
  for (const [resource, n] of watches) assert.equal(n, 1, `${resource} watched ${n} times`);
  assert.equal(ctrl.storage.nodes, ctrl.nodes);
  await ctrl.stop();
});
