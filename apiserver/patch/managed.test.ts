import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusError } from "../../lib/errors.js";
import {
  applyJsonPatch,
  applyMergePatch,
  applyServerSide,
  FieldSet,
  isNoop,
  type ManagedFieldsEntry,
  updateManagedFields,
} from "./index.js";

type Obj = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; managedFields?: ManagedFieldsEntry[] };
  spec?: Record<string, unknown>;
  [k: string]: unknown;
};

const t0 = "2026-11-25T10:00:00Z";
const t1 = "2026-11-25T11:00:00Z";

function vm(spec: Record<string, unknown>, labels: Record<string, string> = { app: "demo" }): Obj {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name: "testvm", namespace: "default", labels },
    spec,
  };
}

const devices = (...names: string[]) => ({
  template: { spec: { domain: { devices: { disks: names.map((name) => ({ name, disk: { bus: "virtio" } })) } } } },
});

/** What the store holds after a create: server-set metadata plus the field manager's entries. */
function stored(obj: Obj, manager = "kubectl-client-side-apply"): Obj {
  const created = { ...obj, metadata: { ...obj.metadata, uid: "u1", resourceVersion: "5", creationTimestamp: t0 } };
  return updateManagedFields({ before: undefined, after: created, manager, now: t0 }).object as Obj;
}

function entry(o: Obj, manager: string): ManagedFieldsEntry {
  const e = o.metadata.managedFields?.find((m) => m.manager === manager);
  assert.ok(e, `no managedFields entry for ${manager}: ${JSON.stringify(o.metadata.managedFields)}`);
  return e;
}

function conflict(fn: () => unknown, message: string, fields: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof StatusError, String(e));
    assert.equal(e.code, 409);
    assert.equal(e.reason, "Conflict");
    assert.equal(e.message, message);
    assert.deepEqual(
      e.status.details?.causes?.map((c) => c.field),
      fields,
    );
    for (const c of e.status.details?.causes ?? []) assert.equal(c.type, "FieldManagerConflict");
    return true;
  });
}

describe("updateManagedFields (ordinary writes)", () => {
  it("a create records an Update entry in FieldsV1, with '.' on maps that appeared", () => {
    const o = stored(vm({ runStrategy: "Halted", ...devices("root") }));
    const e = entry(o, "kubectl-client-side-apply");
    assert.equal(e.operation, "Update");
    assert.equal(e.apiVersion, "kubevirt.io/v1");
    assert.equal(e.time, t0);
    assert.equal(e.fieldsType, "FieldsV1");
    assert.deepEqual(e.fieldsV1, {
      "f:metadata": { "f:labels": { ".": {}, "f:app": {} } },
      "f:spec": {
        ".": {},
        "f:runStrategy": {},
        "f:template": {
          ".": {},
          "f:spec": {
            ".": {},
            "f:domain": {
              ".": {},
              "f:devices": {
                ".": {},
                "f:disks": {
                  ".": {},
                  'k:{"name":"root"}': { ".": {}, "f:disk": { ".": {}, "f:bus": {} }, "f:name": {} },
                },
              },
            },
          },
        },
      },
    });
  });

  it("an update takes the changed fields from their previous manager", () => {
    const o = stored(vm({ runStrategy: "Halted" }));
    const next = applyMergePatch<Obj>(o, { spec: { runStrategy: "Always" } });
    const r = updateManagedFields({ before: o, after: next, manager: "virtctl", now: t1 });
    const csa = FieldSet.fromFieldsV1(entry(r.object as Obj, "kubectl-client-side-apply").fieldsV1);
    const vc = entry(r.object as Obj, "virtctl");
    assert.equal(csa.has(["f:spec", "f:runStrategy"]), false);
    assert.equal(csa.has(["f:metadata", "f:labels", "f:app"]), true);
    assert.deepEqual(vc.fieldsV1, { "f:spec": { "f:runStrategy": {} } });
    assert.equal(vc.time, t1);
    assert.equal(r.changed, true);
  });

  it("a write that changes nothing adds no entry and is a no-op", () => {
    const o = stored(vm({ runStrategy: "Halted" }));
    const r = updateManagedFields({ before: o, after: structuredClone(o), manager: "kubectl-edit", now: t1 });
    assert.equal(r.changed, false);
    assert.deepEqual(
      (r.object as Obj).metadata.managedFields?.map((m) => m.manager),
      ["kubectl-client-side-apply"],
    );
  });

  it("managedFields set in the body are taken verbatim (kubectl's CSA→SSA migration)", () => {
    const o = stored(vm({ runStrategy: "Halted" }));
    const replacement: ManagedFieldsEntry[] = [
      {
        manager: "kubectl",
        operation: "Apply",
        apiVersion: "kubevirt.io/v1",
        time: t1,
        fieldsType: "FieldsV1",
        fieldsV1: { "f:metadata": { "f:labels": { "f:app": {} } }, "f:spec": { "f:runStrategy": {} } },
      },
    ];
    const patched = applyJsonPatch(o, [
      { op: "replace", path: "/metadata/managedFields", value: replacement },
      { op: "replace", path: "/metadata/resourceVersion", value: "5" },
    ]);
    const r = updateManagedFields({ before: o, after: patched, manager: "kubectl", now: t1 });
    assert.deepEqual((r.object as Obj).metadata.managedFields, replacement);
  });

  it("managedFields: [{}] resets them", () => {
    const o = stored(vm({ runStrategy: "Halted" }));
    const r = updateManagedFields({
      before: o,
      after: { ...o, metadata: { ...o.metadata, managedFields: [{}] } },
      manager: "x",
    });
    assert.equal((r.object as Obj).metadata.managedFields, undefined);
  });

  it("a status write records the subresource and cannot set managedFields", () => {
    const o = stored(vm({ runStrategy: "Halted" }));
    const next = { ...structuredClone(o), status: { printableStatus: "Stopped" } } as Obj;
    next.metadata.managedFields = [];
    const r = updateManagedFields({
      before: o,
      after: next,
      manager: "virt-controller",
      subresource: "status",
      now: t1,
    });
    const e = entry(r.object as Obj, "virt-controller");
    assert.equal(e.subresource, "status");
    assert.deepEqual(e.fieldsV1, { "f:status": { ".": {}, "f:printableStatus": {} } });
    assert.ok(entry(r.object as Obj, "kubectl-client-side-apply"));
  });

  it("finalizers are a set (v:)", () => {
    const o = stored(vm({}));
    const next = structuredClone(o) as Obj & { metadata: { finalizers?: string[] } };
    (next.metadata as { finalizers?: string[] }).finalizers = ["kubevirt.io/virtualMachineControllerFinalize"];
    const r = updateManagedFields({ before: o, after: next, manager: "virt-controller", now: t1 });
    assert.deepEqual(entry(r.object as Obj, "virt-controller").fieldsV1, {
      "f:metadata": { "f:finalizers": { ".": {}, 'v:"kubevirt.io/virtualMachineControllerFinalize"': {} } },
    });
  });
});

describe("applyServerSide", () => {
  it("creates: the applier owns what it applied, '.' marks list items", () => {
    const r = applyServerSide({
      live: undefined,
      applied: vm({ runStrategy: "Always", ...devices("root") }),
      manager: "kubectl",
      now: t0,
    });
    const o = r.object as Obj;
    assert.equal(o.spec?.runStrategy, "Always");
    const e = entry(o, "kubectl");
    assert.equal(e.operation, "Apply");
    assert.equal(e.time, t0);
    assert.deepEqual(e.fieldsV1, {
      "f:metadata": { "f:labels": { "f:app": {} } },
      "f:spec": {
        "f:runStrategy": {},
        "f:template": {
          "f:spec": {
            "f:domain": {
              "f:devices": { "f:disks": { 'k:{"name":"root"}': { ".": {}, "f:disk": { "f:bus": {} }, "f:name": {} } } },
            },
          },
        },
      },
    });
  });

  it("changing a field another manager owns is a 409 in kube-apiserver's words", () => {
    const live = stored(vm({ runStrategy: "Halted" }));
    conflict(
      () => applyServerSide({ live, applied: vm({ runStrategy: "Always" }), manager: "other", now: t1 }),
      'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using kubevirt.io/v1: .spec.runStrategy',
      [".spec.runStrategy"],
    );
    conflict(
      () =>
        applyServerSide({ live, applied: vm({ runStrategy: "Always" }, { app: "demo2" }), manager: "other", now: t1 }),
      'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using kubevirt.io/v1:\n- .metadata.labels.app\n- .spec.runStrategy',
      [".metadata.labels.app", ".spec.runStrategy"],
    );
  });

  it("conflicts across several managers are grouped by manager", () => {
    let live = stored(vm({ runStrategy: "Halted" }));
    live = applyServerSide({ live, applied: vm({ runStrategy: "Halted", x: 1 }, {}), manager: "b-applier", now: t1 })
      .object as Obj;
    conflict(
      () => applyServerSide({ live, applied: vm({ runStrategy: "Always", x: 2 }, {}), manager: "c", now: t1 }),
      'Apply failed with 3 conflicts: conflicts with "b-applier":\n- .spec.runStrategy\n- .spec.x\nconflicts with "kubectl-client-side-apply" using kubevirt.io/v1:\n- .spec.runStrategy',
      [".spec.runStrategy", ".spec.x", ".spec.runStrategy"],
    );
  });

  it("applying the same value shares ownership without a conflict", () => {
    const live = stored(vm({ runStrategy: "Halted" }));
    const r = applyServerSide({ live, applied: vm({ runStrategy: "Halted" }), manager: "other", now: t1 });
    const o = r.object as Obj;
    assert.equal(r.changed, true, "a new managedFields entry is a change");
    assert.ok(FieldSet.fromFieldsV1(entry(o, "other").fieldsV1).has(["f:spec", "f:runStrategy"]));
    assert.ok(FieldSet.fromFieldsV1(entry(o, "kubectl-client-side-apply").fieldsV1).has(["f:spec", "f:runStrategy"]));
  });

  it("force takes the field from its owner", () => {
    const live = stored(vm({ runStrategy: "Halted" }));
    const r = applyServerSide({ live, applied: vm({ runStrategy: "Always" }), manager: "other", force: true, now: t1 });
    const o = r.object as Obj;
    assert.equal(o.spec?.runStrategy, "Always");
    assert.equal(
      FieldSet.fromFieldsV1(entry(o, "kubectl-client-side-apply").fieldsV1).has(["f:spec", "f:runStrategy"]),
      false,
    );
  });

  it("a field no longer applied is removed unless someone else owns it", () => {
    let o = applyServerSide({
      live: undefined,
      applied: vm({ runStrategy: "Always", ...devices("root", "data") }, { app: "a", tier: "t" }),
      manager: "kubectl",
      now: t0,
    }).object as Obj;
    o = applyServerSide({
      live: o,
      applied: vm({ runStrategy: "Always", ...devices("root") }, { app: "a" }),
      manager: "kubectl",
      now: t1,
    }).object as Obj;
    assert.deepEqual(o.metadata.labels, { app: "a" });
    const disks = (o.spec as ReturnType<typeof devices>).template.spec.domain.devices.disks;
    assert.deepEqual(
      disks.map((d) => d.name),
      ["root"],
    );

    // A label another manager also set survives the applier dropping it.
    o = updateManagedFields({
      before: o,
      after: applyMergePatch(o, { metadata: { labels: { team: "x" } } }),
      manager: "kubectl-label",
      now: t1,
    }).object as Obj;
    o = applyServerSide({
      live: o,
      applied: vm({ runStrategy: "Always", ...devices("root") }, { app: "a", team: "x" }),
      manager: "kubectl",
      now: t1,
    }).object as Obj;
    o = applyServerSide({
      live: o,
      applied: vm({ runStrategy: "Always", ...devices("root") }, { app: "a" }),
      manager: "kubectl",
      now: t1,
    }).object as Obj;
    assert.deepEqual(o.metadata.labels, { app: "a", team: "x" });
  });

  it("a map the applier owned as a member ('.') stays while its fields are still applied", () => {
    // After kubectl's CSA→SSA migration the Apply entry owns f:spec with "." (inherited from the Update entry).
    const live = applyServerSide({
      live: undefined,
      applied: vm({ runStrategy: "Always" }),
      manager: "kubectl",
      now: t0,
    }).object as Obj;
    const e = entry(live, "kubectl");
    e.fieldsV1 = { "f:metadata": { "f:labels": { ".": {}, "f:app": {} } }, "f:spec": { ".": {}, "f:runStrategy": {} } };
    const again = applyServerSide({ live, applied: vm({ runStrategy: "Always" }), manager: "kubectl", now: t1 })
      .object as Obj;
    assert.deepEqual(again.spec, { runStrategy: "Always" });
    assert.deepEqual(again.metadata.labels, { app: "demo" });
    const emptied = applyServerSide({ live, applied: vm({}, {}), manager: "kubectl", now: t1 }).object as Obj;
    assert.equal(emptied.spec, undefined, "nothing else owns spec: it goes with its last field");
  });

  it("disks merge by name: an applier adding a disk keeps the other manager's", () => {
    let o = applyServerSide({ live: undefined, applied: vm(devices("root")), manager: "a", now: t0 }).object as Obj;
    o = applyServerSide({ live: o, applied: vm(devices("hotplug"), {}), manager: "b", now: t1 }).object as Obj;
    const disks = (o.spec as ReturnType<typeof devices>).template.spec.domain.devices.disks;
    assert.deepEqual(
      disks.map((d) => d.name),
      ["root", "hotplug"],
    );
  });

  it("re-applying the same configuration is a no-op and keeps the timestamp", () => {
    const first = applyServerSide({
      live: undefined,
      applied: vm({ runStrategy: "Always" }),
      manager: "kubectl",
      now: t0,
    });
    const again = applyServerSide({
      live: first.object,
      applied: vm({ runStrategy: "Always" }),
      manager: "kubectl",
      now: t1,
    });
    assert.equal(again.changed, false);
    assert.equal(entry(again.object as Obj, "kubectl").time, t0);
  });

  it("an applied configuration with managedFields is a 400", () => {
    const applied = vm({});
    applied.metadata.managedFields = [];
    assert.throws(
      () => applyServerSide({ live: undefined, applied, manager: "kubectl" }),
      (e: unknown) => e instanceof StatusError && e.code === 400 && e.message === "metadata.managedFields must be nil",
    );
  });

  it("kubectl apply --server-side onto a client-side-applied object: the whole migration", () => {
    const lastApplied = "kubectl.kubernetes.io/last-applied-configuration";
    const csa = vm({ runStrategy: "Halted" });
    (csa.metadata as { annotations?: Record<string, string> }).annotations = { [lastApplied]: "{...}" };
    let live = stored(csa);
    // 1. apply as "kubectl" with the same values: no conflict.
    live = applyServerSide({ live, applied: vm({ runStrategy: "Halted" }), manager: "kubectl", now: t1 }).object as Obj;
    // 2. the last-applied annotation as "kubectl-last-applied".
    const la = vm({});
    delete la.spec;
    la.metadata.labels = undefined as never;
    delete la.metadata.labels;
    // kubectl sends the value kube-apiserver already wrote there (both encode the applied configuration).
    const synced = (live.metadata as { annotations?: Record<string, string> }).annotations?.[lastApplied];
    assert.equal(
      synced,
      '{"apiVersion":"kubevirt.io/v1","kind":"VirtualMachine","metadata":{"labels":{"app":"demo"},"name":"testvm","namespace":"default"},"spec":{"runStrategy":"Halted"}}\n',
    );
    (la.metadata as { annotations?: Record<string, string> }).annotations = { [lastApplied]: synced! };
    live = applyServerSide({ live, applied: la, manager: "kubectl-last-applied", now: t1, force: false }).object as Obj;
    // 3. JSON patch replacing managedFields (CSA's fields now belong to kubectl) with the resourceVersion precondition.
    const kubectlSet = FieldSet.fromFieldsV1(entry(live, "kubectl").fieldsV1).union(
      FieldSet.fromFieldsV1(entry(live, "kubectl-client-side-apply").fieldsV1),
    );
    const migrated: ManagedFieldsEntry[] = [
      { ...entry(live, "kubectl"), fieldsV1: kubectlSet.toFieldsV1() },
      entry(live, "kubectl-last-applied"),
    ];
    const patched = applyJsonPatch(live, [
      { op: "replace", path: "/metadata/managedFields", value: migrated },
      { op: "replace", path: "/metadata/resourceVersion", value: "5" },
    ]);
    live = updateManagedFields({ before: live, after: patched, manager: "kubectl", now: t1 }).object as Obj;
    assert.deepEqual(
      live.metadata.managedFields?.map((m) => `${m.manager}/${m.operation}`),
      ["kubectl/Apply", "kubectl-last-applied/Apply"],
    );
    // 4. now another manager changing the VM conflicts with kubectl (an applier: no "using").
    conflict(
      () => applyServerSide({ live, applied: vm({ runStrategy: "Always" }), manager: "other", now: t1 }),
      'Apply failed with 1 conflict: conflict with "kubectl": .spec.runStrategy',
      [".spec.runStrategy"],
    );
  });
});

describe("applyServerSide: kube-apiserver's client-side → server-side apply upgrade", () => {
  const la = "kubectl.kubernetes.io/last-applied-configuration";
  function csaCreated(): Obj {
    const config = vm({ runStrategy: "Halted" });
    const body = structuredClone(config) as Obj & { metadata: { annotations?: Record<string, string> } };
    body.metadata.annotations = { [la]: JSON.stringify(config) };
    return stored(body);
  }

  it("kubectl may change fields the last-applied annotation still describes, and the annotation follows", () => {
    const r = applyServerSide({
      live: csaCreated(),
      applied: vm({ runStrategy: "Always" }, { app: "demo2" }),
      manager: "kubectl",
      now: t1,
    });
    const o = r.object as Obj & { metadata: { annotations: Record<string, string> } };
    assert.equal(o.spec?.runStrategy, "Always");
    assert.deepEqual(o.metadata.labels, { app: "demo2" });
    assert.deepEqual(JSON.parse(o.metadata.annotations[la]!), vm({ runStrategy: "Always" }, { app: "demo2" }));
    assert.equal(
      FieldSet.fromFieldsV1(entry(o, "kubectl-client-side-apply").fieldsV1).has(["f:spec", "f:runStrategy"]),
      false,
    );
  });

  it("any other manager still conflicts", () => {
    conflict(
      () =>
        applyServerSide({
          live: csaCreated(),
          applied: vm({ runStrategy: "Always" }, { app: "demo2" }),
          manager: "other",
          now: t1,
        }),
      'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using kubevirt.io/v1:\n- .metadata.labels.app\n- .spec.runStrategy',
      [".metadata.labels.app", ".spec.runStrategy"],
    );
  });

  it("a field changed since the last client-side apply still conflicts for kubectl", () => {
    let live = csaCreated();
    live = updateManagedFields({
      before: live,
      after: applyMergePatch(live, { spec: { runStrategy: "Manual" } }),
      manager: "kubectl-client-side-apply",
      now: t1,
    }).object as Obj;
    conflict(
      () =>
        applyServerSide({
          live,
          applied: vm({ runStrategy: "Always" }, { app: "demo2" }),
          manager: "kubectl",
          now: t1,
        }),
      'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using kubevirt.io/v1: .spec.runStrategy',
      [".spec.runStrategy"],
    );
  });
});

describe("field management leaves its inputs alone", () => {
  it("neither updateManagedFields nor applyServerSide mutates before/after/live/applied", () => {
    const live = stored(vm({ runStrategy: "Halted", ...devices("root", "data") }, { app: "a", tier: "t" }));
    const after = applyMergePatch<Obj>(live, { spec: { runStrategy: "Always" } });
    const snapshot = structuredClone({ live, after });
    updateManagedFields({ before: live, after, manager: "m", now: t1 });
    const applied = vm({ runStrategy: "Always", ...devices("root") }, { app: "a" });
    const appliedCopy = structuredClone(applied);
    let o = applyServerSide({
      live,
      applied: vm({ runStrategy: "Halted", ...devices("root", "data") }, { app: "a", tier: "t" }),
      manager: "k",
      now: t1,
    }).object;
    const oCopy = structuredClone(o);
    o = applyServerSide({ live: o, applied, manager: "k", force: true, now: t1 }).object;
    assert.deepEqual({ live, after }, snapshot);
    assert.deepEqual(applied, appliedCopy);
    assert.notDeepEqual(o, oCopy);
  });

  it("an explicit apiVersion names the entry (status writes carry no apiVersion of their own)", () => {
    const live = stored(vm({ runStrategy: "Halted" }));
    const r = applyServerSide({
      live,
      applied: { status: { ready: true } },
      manager: "ctl",
      subresource: "status",
      apiVersion: "kubevirt.io/v1",
      now: t1,
    });
    const e = entry(r.object as Obj, "ctl");
    assert.equal(e.apiVersion, "kubevirt.io/v1");
    assert.equal(e.subresource, "status");
    assert.deepEqual(e.fieldsV1, { "f:status": { "f:ready": {} } });
  });
});

describe("isNoop", () => {
  const base = stored(vm({ runStrategy: "Halted" }));
  it("ignores resourceVersion and managedFields timestamps", () => {
    const o = structuredClone(base) as Obj & { metadata: { resourceVersion?: string } };
    (o.metadata as { resourceVersion?: string }).resourceVersion = "99";
    o.metadata.managedFields = o.metadata.managedFields?.map((m) => ({ ...m, time: t1 }));
    assert.equal(isNoop(base, o), true);
  });
  it("sees a real change", () => {
    assert.equal(isNoop(base, applyMergePatch(base, { metadata: { labels: { app: "x" } } })), false);
    assert.equal(isNoop(base, applyMergePatch(base, { spec: { running: null, runStrategy: "Always" } })), false);
  });
});
