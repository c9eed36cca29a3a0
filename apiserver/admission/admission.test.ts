import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { parseAllDocuments } from "yaml";
import { ColdMigration, kubevirtCrds, VMI_FINALIZER } from "../../api/index.js";
import { isStatusError, type StatusError } from "../../lib/errors.js";
import { validateObject } from "../validation/index.js";
import {
  type AdmissionRequest,
  admissionPlugins,
  INERT_KINDS,
  inertWarning,
  MIGRATION_VMI_LABEL,
  runAdmission,
} from "./index.js";

type Obj = Record<string, unknown>;
const CRDS = kubevirtCrds();
const examplesDir = new URL("../../api/testdata/kubevirt-examples/", import.meta.url);

function examples(): { file: string; obj: Obj }[] {
  const out: { file: string; obj: Obj }[] = [];
  for (const file of readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"))) {
    for (const doc of parseAllDocuments(readFileSync(new URL(file, examplesDir), "utf8"))) {
      const obj = doc.toJS() as Obj | null;
      if (obj) out.push({ file, obj });
    }
  }
  return out;
}

function request(obj: Obj, operation: AdmissionRequest["operation"] = "CREATE", oldObject?: Obj): AdmissionRequest {
  const crd = CRDS.find((c) => c.spec.names.kind === obj.kind);
  assert.ok(crd, String(obj.kind));
  const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string };
  return {
    uid: "u1",
    kind: { group: crd.spec.group, version: "v1", kind: String(obj.kind) },
    resource: { group: crd.spec.group, version: "v1", resource: crd.spec.names.plural },
    operation,
    name: meta.name,
    namespace: meta.namespace ?? "default",
    userInfo: { username: "alice" },
    object: obj,
    ...(oldObject ? { oldObject } : {}),
  };
}

const vmiMigratable = { metadata: { name: "vmi-migratable", namespace: "default" }, status: { phase: "Running" } };
const plugins = admissionPlugins({
  getVmi: (ns, name) => (ns === "default" && name === "vmi-migratable" ? vmiMigratable : undefined),
  now: () => "2026-01-01T00:00:00Z",
  uuid: () => "00000000-0000-4000-8000-000000000001",
});

async function rejected(p: Promise<unknown>): Promise<StatusError> {
  try {
    await p;
  } catch (e) {
    assert.ok(isStatusError(e), String(e));
    return e;
  }
  assert.fail("expected the request to be denied");
}

test("every KubeVirt example passes admission, and the defaulted object still validates with no unknown field", async () => {
  for (const { file, obj } of examples()) {
    const { object, warnings } = await runAdmission(plugins, request(obj));
    // the only warning an example gets is its kind's, when nothing acts on that kind yet
    const inert = INERT_KINDS.find((k) => k.kind === obj.kind);
    assert.deepEqual(warnings, inert ? [inertWarning(inert)] : [], file);
    const crd = CRDS.find((c) => c.spec.names.kind === obj.kind);
    const r = validateObject(crd?.spec.versions[0]?.schema?.openAPIV3Schema as object, object, {
      fieldValidation: "Strict",
    });
    assert.deepEqual(r.unknownFields, [], file);
    assert.deepEqual(r.causes, [], file);
  }
});

test("VMI creation defaults: q35, pod network + masquerade, disk bus, finalizer, Pending phase", async () => {
  const vmi = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "v1" },
    spec: {
      domain: {
        resources: { requests: { memory: "128Mi" } },
        devices: { disks: [{ name: "root" }, { name: "iso", cdrom: {} }] },
      },
      volumes: [
        { name: "root", containerDisk: { image: "registry:5000/cirros:devel" } },
        { name: "iso", containerDisk: { image: "busybox" } },
        { name: "cloudinit", cloudInitNoCloud: { userData: "#cloud-config" } },
      ],
    },
  };
  const { object } = await runAdmission(plugins, request(vmi));
  const o = object as any;
  assert.deepEqual(o.metadata.finalizers, [VMI_FINALIZER]);
  assert.equal(o.status.phase, "Pending");
  assert.deepEqual(o.status.phaseTransitionTimestamps, [
    { phase: "Pending", phaseTransitionTimestamp: "2026-01-01T00:00:00Z" },
  ]);
  assert.equal(o.spec.domain.machine.type, "q35");
  assert.deepEqual(o.spec.domain.devices.interfaces, [{ name: "default", masquerade: {} }]);
  assert.deepEqual(o.spec.networks, [{ name: "default", pod: {} }]);
  assert.deepEqual(o.spec.domain.devices.disks, [
    { name: "root", disk: { bus: "virtio" } },
    { name: "iso", cdrom: { bus: "sata", readonly: true, tray: "closed" } },
    { name: "cloudinit", disk: { bus: "virtio" } },
  ]);
  assert.equal(o.spec.domain.memory.guest, "128Mi");
  assert.deepEqual(o.spec.domain.cpu, { sockets: 1, cores: 1, threads: 1 });
  assert.equal(o.spec.terminationGracePeriodSeconds, 30);
  assert.equal(o.spec.volumes[0].containerDisk.imagePullPolicy, "IfNotPresent");
  assert.equal(o.spec.volumes[1].containerDisk.imagePullPolicy, "Always");
  assert.equal(o.spec.domain.firmware.uuid, "00000000-0000-4000-8000-000000000001");
  // no pod interface when the user opts out
  const off = structuredClone(vmi) as any;
  off.spec.domain.devices.autoattachPodInterface = false;
  const r2 = (await runAdmission(plugins, request(off))).object as any;
  assert.equal(r2.spec.networks, undefined);
  assert.equal(r2.spec.domain.devices.interfaces, undefined);
});

test("VM defaults runStrategy to Halted only when neither running nor runStrategy is set", async () => {
  const vm = (extra: Obj) => ({
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name: "vm1" },
    spec: { ...extra, template: { spec: { domain: { devices: {} } } } },
  });
  assert.equal(((await runAdmission(plugins, request(vm({})))).object as any).spec.runStrategy, "Halted");
  const running = (await runAdmission(plugins, request(vm({ running: true })))).object as any;
  assert.equal(running.spec.runStrategy, undefined);
  assert.equal(running.spec.running, true);
  assert.equal(running.spec.template.spec.domain.machine.type, "q35");
  assert.equal(running.spec.template.spec.architecture, "amd64");
  // set values stay; an empty machine gets its type; a VM without a spec gets one
  const custom = vm({ runStrategy: "Always" }) as Obj & { spec: { template: { spec: Obj } } };
  custom.spec.template.spec = { architecture: "arm64", domain: { machine: { type: "virt" } } };
  const kept = (await runAdmission(plugins, request(custom))).object as any;
  assert.deepEqual(kept.spec, custom.spec);
  custom.spec.template.spec = { domain: { machine: {} } };
  const typed = (await runAdmission(plugins, request(custom))).object as any;
  assert.deepEqual(typed.spec.template.spec, { architecture: "amd64", domain: { machine: { type: "q35" } } });
  const bare = (await runAdmission(plugins, request({ apiVersion: "kubevirt.io/v1", kind: "VirtualMachine" }))).object;
  assert.deepEqual((bare as any).spec, { runStrategy: "Halted" });
});

test("running with runStrategy, a disk without a volume and a bad quantity are 422 with one cause per field", async () => {
  const vm = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name: "bad" },
    spec: {
      running: true,
      runStrategy: "Always",
      template: {
        spec: {
          domain: { resources: { requests: { memory: "12x" } }, devices: { disks: [{ name: "nope", disk: {} }] } },
          volumes: [{ name: "root", containerDisk: { image: "i" } }],
        },
      },
    },
  };
  const err = await rejected(runAdmission(plugins, request(vm)));
  assert.equal(err.status.code, 422);
  assert.equal(err.status.reason, "Invalid");
  assert.match(err.status.message, /^admission webhook "virtualmachine-validator\.kubevirt\.io" denied the request: /);
  assert.deepEqual(
    err.status.details?.causes?.map((c) => c.field),
    [
      "spec.running",
      "spec.template.spec.domain.devices.disks[0].name",
      "spec.template.spec.domain.resources.requests.memory",
    ],
  );
  assert.equal(err.status.details?.kind, "VirtualMachine");
  assert.equal(err.status.details?.name, "bad");
});

test("a volume used by two disks and duplicate volume names are rejected", async () => {
  const vmi = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "dup" },
    spec: {
      domain: { devices: { disks: [{ name: "a" }, { name: "a" }] } },
      volumes: [
        { name: "a", emptyDisk: { capacity: "1Gi" } },
        { name: "a", emptyDisk: { capacity: "1Gi" } },
      ],
    },
  };
  const err = await rejected(runAdmission(plugins, request(vmi)));
  assert.deepEqual(
    err.status.details?.causes?.map((c) => [c.type, c.field]),
    [
      ["FieldValueDuplicate", "spec.volumes[1].name"],
      ["FieldValueDuplicate", "spec.domain.devices.disks[1].name"],
    ],
  );
});

test("a migration must name an existing VMI; an accepted one is labelled, with no finalizer nothing would remove", async () => {
  const m = (vmiName: string) => ({
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name: "mig" },
    spec: { vmiName },
  });
  const err = await rejected(runAdmission(plugins, request(m("ghost"))));
  assert.equal(err.status.code, 422);
  assert.equal(err.status.details?.causes?.[0]?.field, "spec.vmiName");
  const ok = (await runAdmission(plugins, request(m("vmi-migratable")))).object as any;
  assert.equal(ok.metadata.finalizers, undefined);
  assert.equal(ok.metadata.labels[MIGRATION_VMI_LABEL], "vmi-migratable");
});

test("a migration of a VMI that cannot migrate, or with one in flight, is refused at admission (KubeVirt's)", async () => {
  const vmis: Record<string, Obj> = {
    bridged: {
      metadata: { name: "bridged", namespace: "default" },
      status: {
        phase: "Running",
        conditions: [
          { type: "LiveMigratable", status: "False", reason: "InterfaceNotLiveMigratable", message: "bridge" },
        ],
      },
    },
    busy: { metadata: { name: "busy", namespace: "default" }, status: { phase: "Running" } },
    done: { metadata: { name: "done", namespace: "default" }, status: { phase: "Running" } },
  };
  const vmims: Obj[] = [
    { metadata: { name: "running" }, spec: { vmiName: "busy" }, status: { phase: "Running" } },
    { metadata: { name: "old" }, spec: { vmiName: "done" }, status: { phase: "Succeeded" } },
    { metadata: { name: "failed" }, spec: { vmiName: "done" }, status: { phase: "Failed" } },
    { metadata: { name: "going", deletionTimestamp: "2026-01-01T00:00:00Z" }, spec: { vmiName: "done" } },
  ];
  const p = admissionPlugins({
    getVmi: (ns, name) => (ns === "default" ? vmis[name] : undefined),
    listMigrations: (ns) => (ns === "default" ? vmims : []),
  });
  const m = (vmiName: string) => ({
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name: "mig" },
    spec: { vmiName },
  });
  let err = await rejected(runAdmission(p, request(m("bridged"))));
  assert.equal(err.status.code, 422);
  assert.equal(err.status.details?.causes?.[0]?.field, "spec.vmiName");
  assert.match(err.status.message, /Cannot migrate VMI, Reason: InterfaceNotLiveMigratable, Message: bridge/);
  err = await rejected(runAdmission(p, request(m("busy"))));
  assert.equal(err.status.code, 422);
  assert.equal(err.status.details?.causes?.[0]?.field, "spec.vmiName");
  assert.match(err.status.message, /in-flight migration detected\. Active migration job \(running\)/);
  // finished migrations and one being deleted (a cancel) do not block a new one
  const ok = (await runAdmission(p, request(m("done")))).object as any;
  assert.equal(ok.metadata.labels[MIGRATION_VMI_LABEL], "done");
});

test("a migration of a stopped VM is a cold one (labelled); a starting VM or one with a VMI keeps the live rules", async () => {
  const vms: Record<string, Obj> = {
    stopped: { metadata: { name: "stopped" }, spec: { runStrategy: "Halted", template: { spec: {} } } },
    always: { metadata: { name: "always" }, spec: { runStrategy: "Always", template: { spec: {} } } },
    asked: {
      metadata: { name: "asked" },
      spec: { runStrategy: "Manual", template: { spec: {} } },
      status: { stateChangeRequests: [{ action: "Start" }] },
    },
    "vmi-migratable": { metadata: { name: "vmi-migratable" }, spec: { runStrategy: "Always", template: { spec: {} } } },
  };
  const p = admissionPlugins({
    getVmi: (ns, name) => (ns === "default" && name === "vmi-migratable" ? vmiMigratable : undefined),
    getVm: (ns, name) => (ns === "default" ? vms[name] : undefined),
  });
  const m = (vmiName: string, labels?: Record<string, string>) => ({
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstanceMigration",
    metadata: { name: "mig", ...(labels ? { labels } : {}) },
    spec: { vmiName, addedNodeSelector: { "kubernetes.io/hostname": "node02" } },
  });
  const cold = (await runAdmission(p, request(m("stopped")))).object as any;
  assert.equal(cold.metadata.labels[ColdMigration.modeLabel], "Cold");
  assert.equal(cold.metadata.labels[MIGRATION_VMI_LABEL], "stopped");
  for (const name of ["always", "asked"]) {
    const err = await rejected(runAdmission(p, request(m(name))));
    assert.equal(err.status.code, 422, name);
    assert.equal(err.status.details?.causes?.[0]?.field, "spec.vmiName", name);
  }
  // the label is admission's: a live migration that claims to be cold is labelled as what it is
  const live = (await runAdmission(p, request(m("vmi-migratable", { [ColdMigration.modeLabel]: "Cold" }))))
    .object as any;
  assert.equal(live.metadata.labels[ColdMigration.modeLabel], undefined);
});

test("a VMI's spec is immutable after creation; status and metadata updates pass", async () => {
  const created = (
    await runAdmission(
      plugins,
      request({
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachineInstance",
        metadata: { name: "imm" },
        spec: { domain: { devices: {} } },
      }),
    )
  ).object as any;
  const statusOnly = structuredClone(created);
  statusOnly.status.phase = "Scheduling";
  statusOnly.metadata.labels = { a: "b" };
  await runAdmission(plugins, request(statusOnly, "UPDATE", created));
  const changed = structuredClone(created);
  changed.spec.domain.machine.type = "pc";
  const err = await rejected(runAdmission(plugins, request(changed, "UPDATE", created)));
  assert.equal(err.status.code, 422);
  assert.equal(err.status.details?.causes?.[0]?.field, "spec");
  assert.match(err.status.message, /update of VMI object is restricted/);
});

test("fields accepted but not implemented yet come back as warnings naming them", async () => {
  const vmi = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "gpu" },
    spec: {
      domain: {
        devices: { gpus: [{ name: "g", deviceName: "nvidia.com/x" }] },
        cpu: { numa: { guestMappingPassthrough: {} } },
      },
    },
  };
  const { warnings } = await runAdmission(plugins, request(vmi));
  assert.deepEqual(warnings, [
    "spec.domain.devices.gpus: accepted but not implemented by tsvirt yet",
    "spec.domain.cpu.numa: accepted but not implemented by tsvirt yet",
  ]);
});

test("every stored-but-inert kind answers create and update with one warning naming it; others get none", async () => {
  const req = (group: string, resource: string, operation: AdmissionRequest["operation"], subResource?: string) =>
    ({
      uid: "u",
      kind: { group, version: "v1", kind: "X" },
      resource: { group, version: "v1", resource },
      operation,
      ...(subResource ? { subResource } : {}),
      namespace: "default",
      userInfo: { username: "alice" },
      object: { metadata: { name: "x" }, spec: {} },
    }) as AdmissionRequest;
  const pool = INERT_KINDS.find((k) => k.kind === "VirtualMachinePool");
  assert.ok(pool);
  assert.equal(
    inertWarning(pool),
    "pool.kubevirt.io/v1beta1 VirtualMachinePool is stored but not acted on yet: no pool controller runs in this version, no VMs are created from it",
  );
  // DataVolumes are acted on (storage/datavolume): no longer inert
  assert.equal(
    INERT_KINDS.some((k) => k.kind === "DataVolume"),
    false,
  );
  for (const k of INERT_KINDS.filter((k) => k.group !== "kubevirt.io")) {
    for (const op of ["CREATE", "UPDATE"] as const) {
      const { warnings } = await runAdmission(plugins, req(k.group, k.resource, op));
      assert.deepEqual(warnings, [inertWarning(k)], `${k.kind} ${op}`);
    }
    assert.deepEqual((await runAdmission(plugins, req(k.group, k.resource, "UPDATE", "status"))).warnings, []);
    assert.deepEqual((await runAdmission(plugins, req(k.group, k.resource, "DELETE"))).warnings, []);
  }
  assert.ok(
    ["VirtualMachineSnapshot", "VirtualMachineSnapshotContent"].every((kind) =>
      INERT_KINDS.some((k) => k.kind === kind),
    ),
  );
  // VMIMs are acted on (controller/migration): no longer inert
  assert.equal(
    INERT_KINDS.some((k) => k.kind === "VirtualMachineInstanceMigration"),
    false,
  );
  assert.deepEqual((await runAdmission(plugins, req("", "configmaps", "CREATE"))).warnings, []);
  assert.deepEqual((await runAdmission(plugins, req("", "pods", "CREATE"))).warnings, []);
});

test("malformed objects never crash admission: defaulting steps aside, validation answers with a Status", async () => {
  const weird: unknown[] = [
    { spec: "x" },
    { spec: { domain: "x", volumes: "y" } },
    { spec: { domain: { memory: "1Gi", devices: { disks: [null, 3, "d"] } }, volumes: [null, 1] } },
    { spec: { domain: { devices: { interfaces: [{}], disks: [{}] } }, networks: [{}] } },
    { metadata: "m", spec: { template: 5 } },
  ];
  for (const kind of ["VirtualMachineInstance", "VirtualMachine", "VirtualMachineInstanceReplicaSet"]) {
    for (const w of weird) {
      const obj = { apiVersion: "kubevirt.io/v1", kind, ...(w as Obj) };
      try {
        await runAdmission(plugins, request(obj));
      } catch (e) {
        assert.ok(isStatusError(e), `${kind} ${JSON.stringify(w)}: ${String(e)}`);
        assert.ok(e.status.code === 400 || e.status.code === 422);
      }
    }
  }
});

test("in process and as webhooks the plugins decide alike; only an owner's object is mutated in place", async () => {
  // the same plugins without their in-process interface: called through AdmissionReview + base64 JSON patch
  const webhooks = plugins.map(({ admit: _admit, ...p }) => p);
  const vmi = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "v", finalizers: ["x"] },
    spec: { domain: { devices: {}, resources: { requests: { memory: "64Mi" } } } },
  };
  const cases = [...examples().map((e) => e.obj), vmi];
  for (const obj of cases) {
    const before = structuredClone(obj);
    const inProcess = await runAdmission(plugins, request(obj));
    assert.deepEqual(obj, before, "the caller's object stays as it was");
    const viaReview = await runAdmission(webhooks, request(structuredClone(obj)));
    assert.deepEqual(inProcess, viaReview, String(obj.kind));
    const owned = structuredClone(obj);
    const inPlace = await runAdmission(plugins, request(owned), { mutateInPlace: true });
    assert.deepEqual(inPlace, inProcess);
    assert.equal(inPlace.object, owned, "mutated in place, no copy");
  }
});

test("hostDisk: a relative path or a '..' component is a 422 naming spec.volumes[i].hostDisk.path", async () => {
  const { validateVmiSpec } = await import("./index.js");
  const spec = (path: string, type = "Disk") => ({
    domain: { devices: { disks: [{ name: "h" }] } },
    volumes: [{ name: "h", hostDisk: { path, type, ...(type === "DiskOrCreate" ? { capacity: "1Gi" } : {}) } }],
  });
  for (const bad of ["relative/disk.img", "/var/lib/tsvirt/hostdisks/../../etc/shadow", ""]) {
    assert.deepEqual(
      validateVmiSpec(spec(bad)).map((c) => c.field),
      ["spec.volumes[0].hostDisk.path"],
      bad,
    );
  }
  assert.deepEqual(validateVmiSpec(spec("/srv/disks/a.img")), []);
  assert.deepEqual(validateVmiSpec(spec("/srv/disks/a.img", "DiskOrCreate")), []);
  assert.deepEqual(
    validateVmiSpec({
      ...spec("/srv/a.img"),
      volumes: [{ name: "h", hostDisk: { path: "/srv/a.img", type: "DiskOrCreate" } }],
    }).map((c) => c.field),
    ["spec.volumes[0].hostDisk.capacity"],
  );
  assert.deepEqual(
    validateVmiSpec({
      domain: { devices: { disks: [{ name: "c" }] } },
      volumes: [{ name: "c", containerDisk: { image: "r/i", imagePullPolicy: "Sometimes" } }],
    }).map((c) => c.field),
    ["spec.volumes[0].containerDisk.imagePullPolicy"],
  );
});

test("MigrationPolicy: pausing (workload disruption without post-copy) and experimental answer a Warning; the rest is acted on", async () => {
  const policy = (spec: Obj): AdmissionRequest =>
    ({
      uid: "u",
      kind: { group: "migrations.kubevirt.io", version: "v1alpha1", kind: "MigrationPolicy" },
      resource: { group: "migrations.kubevirt.io", version: "v1alpha1", resource: "migrationpolicies" },
      operation: "CREATE",
      userInfo: { username: "alice" },
      object: { apiVersion: "migrations.kubevirt.io/v1alpha1", kind: "MigrationPolicy", metadata: { name: "p" }, spec },
    }) as AdmissionRequest;
  const quiet = await runAdmission(plugins, policy({ bandwidthPerMigration: "64Mi", allowAutoConverge: true }));
  assert.deepEqual(quiet.warnings, []);
  // post-copy is switched to past the completion budget: acted on
  const postCopy = await runAdmission(plugins, policy({ allowPostCopy: true, allowWorkloadDisruption: true }));
  assert.deepEqual(postCopy.warnings, []);
  assert.deepEqual((await runAdmission(plugins, policy({ allowPostCopy: true }))).warnings, []);
  // workload disruption without post-copy pauses the guest past the budget: acted on too
  assert.deepEqual((await runAdmission(plugins, policy({ allowWorkloadDisruption: true }))).warnings, []);
  const loud = await runAdmission(plugins, policy({ allowWorkloadDisruption: true, experimental: {} }));
  assert.equal(loud.warnings.length, 1);
  assert.match(loud.warnings[0] ?? "", /^spec\.experimental: accepted but not acted on/);
});
