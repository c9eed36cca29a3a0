// The crash matrix's regression checks are pure functions of the watched events: each must catch what it claims.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  duplicatePods,
  type KObj,
  lastPhase,
  phaseRegressions,
  vmStatusRegressions,
  type WatchEvent,
} from "./crash-lib.js";

let rv = 0;
function ev(obj: Partial<KObj> & { uid?: string; name?: string }, type: WatchEvent["type"] = "MODIFIED"): WatchEvent {
  rv++;
  const o: KObj = {
    metadata: { name: obj.name ?? "vm1", uid: obj.uid ?? "u1", resourceVersion: String(rv), ...obj.metadata },
    spec: obj.spec,
    status: obj.status,
  };
  return { type, obj: o, rv };
}
const vmi = (phase: string, uid = "u1", hist: string[] = []) =>
  ev({
    uid,
    status: { phase, phaseTransitionTimestamps: hist.map((p) => ({ phase: p, phaseTransitionTimestamp: "t" })) },
  });
const vm = (printableStatus: string, ready = false, runStrategy = "Always") =>
  ev({
    uid: "vm",
    spec: { runStrategy },
    status: { printableStatus, conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
  });

describe("crash matrix checks", () => {
  it("a VMI's last phase is the one its deletion event carries", () => {
    const gone = ev({ uid: "u1", status: { phase: "Succeeded" } }, "DELETED");
    const events = [vmi("Running", "u1"), vmi("Running", "u2"), vmi("Succeeded", "u1"), gone];
    assert.equal(lastPhase(events, "u1"), "Succeeded");
    assert.equal(lastPhase(events, "u2"), "Running");
    assert.equal(lastPhase(events, "u3"), "");
  });

  it("VMI phases: forward is fine, backwards or a rewritten history is a regression", () => {
    assert.deepEqual(
      phaseRegressions([
        vmi("Pending", "u1", ["Pending"]),
        vmi("Scheduled", "u1", ["Pending", "Scheduled"]),
        vmi("Running", "u1", ["Pending", "Scheduled", "Running"]),
        vmi("Pending", "u2", ["Pending"]),
      ]),
      [],
    );
    assert.equal(phaseRegressions([vmi("Running"), vmi("Scheduled")]).length, 1);
    assert.equal(phaseRegressions([vmi("Failed"), vmi("Succeeded")]).length, 1);
    assert.equal(
      phaseRegressions([vmi("Running", "u1", ["Pending", "Running"]), vmi("Running", "u1", ["Running"])]).length,
      1,
    );
  });

  it("VM status: a failure allows a restart; Stopped or Ready=False without one is a regression", () => {
    const ok = [
      vm("Starting"),
      vm("Running", true),
      vmi("Failed"),
      vm("CrashLoopBackOff"),
      vm("Starting"),
      vm("Running", true),
    ];
    assert.deepEqual(
      vmStatusRegressions(
        ok.filter((e) => e.obj.metadata.uid === "vm"),
        ok.filter((e) => e.obj.metadata.uid !== "vm"),
      ),
      [],
    );
    assert.equal(vmStatusRegressions([vm("Starting"), vm("Running", true), vm("Starting")], []).length, 2);
    assert.equal(vmStatusRegressions([vm("Running", true), vm("Running", false)], []).length, 1);
    // After the launcher's kill (rv of the first event), Ready may drop before the VMI is seen failing.
    const killed = [vm("Running", true), vm("Running", false)];
    assert.deepEqual(vmStatusRegressions(killed, [], killed[0]!.rv), []);
    // ... even when Ready (reported before the death was noticed) shows True once more after the kill.
    const k2 = [vm("Running", false), vm("Running", true), vm("Running", false)];
    assert.deepEqual(vmStatusRegressions(k2, [], k2[0]!.rv), []);
    // Once the killed VMI has ended, a new one is held to the rule again.
    const after = [vm("Running", true), vmi("Failed"), vm("Running", true), vm("Running", false)];
    const vmsOnly = after.filter((e) => e.obj.metadata.uid === "vm");
    assert.equal(vmStatusRegressions(vmsOnly, [after[1]!], after[0]!.rv - 1).length, 1);
    const bogusStop = [vm("Running", true), vmi("Failed"), vm("Stopped")];
    assert.equal(
      vmStatusRegressions(
        bogusStop.filter((e) => e.obj.metadata.uid === "vm"),
        bogusStop.filter((e) => e.obj.metadata.uid !== "vm"),
      ).length,
      1,
    );
    assert.deepEqual(
      vmStatusRegressions([vm("Running", true), vm("Stopping", true, "Halted"), vm("Stopped", false, "Halted")], []),
      [],
    );
  });

  it("launcher pods: two live at once for one VMI is a duplicate", () => {
    const pod = (uid: string, extra: Record<string, unknown> = {}) =>
      ev({
        uid,
        name: uid,
        metadata: { labels: { "kubevirt.io/created-by": "v1" } } as never,
        status: { phase: "Running" },
        ...extra,
      });
    assert.deepEqual(duplicatePods([pod("p1"), pod("p1", { status: { phase: "Failed" } }), pod("p2")]), []);
    assert.equal(duplicatePods([pod("p1"), pod("p2")]).length, 1);
  });
});
