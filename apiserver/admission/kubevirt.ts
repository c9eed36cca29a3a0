// KubeVirt's admission webhooks as in-process AdmissionPlugins (pkg/virt-api/webhooks): defaulting (mutating) and
// semantic validation (validating) for VirtualMachineInstances, VirtualMachines, ReplicaSets, pools and migrations.
// Each takes and returns an AdmissionReview v1; mutations are base64 JSON patches. Plugin names are KubeVirt's
// webhook names.
import { randomUUID } from "node:crypto";
import {
  ColdMigration,
  isColdMigration,
  isKubeVirtServiceAccount,
  KUBEVIRT_NAME,
  KUBEVIRT_NAMESPACE,
  parseQuantity,
  SERVICE_ACCOUNTS,
  serviceAccountUser,
  unimplementedFields,
  unimplementedKubeVirtFields,
  VMI_FINALIZER,
} from "../../api/index.js";
import type { VirtualMachine, VirtualMachineInstanceMigration } from "../../client/index.js";
import { isFinishedMigration, runStrategyOf, setToStart } from "../../controller/index.js";
import type { StatusCause } from "../../lib/errors.js";
import { field, isObject, type Rec, rec } from "../../lib/json.js";
import { type LabelSelectorObject, type Labels, labelSelectorMatches } from "../../lib/selectors.js";
import { authorize } from "../auth/authorize.js";
import { cdiConfigWarnings, crossNamespaceCloneCauses, validateDataVolumeSpec } from "./datavolume.js";
import { inertKindsPlugin } from "./inert.js";
import { encodePatch, type PatchOp } from "./json-patch.js";
import type {
  AdmissionDecision,
  AdmissionPlugin,
  AdmissionRequest,
  AdmissionResponse,
  AdmissionReview,
} from "./types.js";

// Admission runs before schema validation: its input is untrusted JSON, read as `unknown` and narrowed here. A value
// of the wrong type where defaulting must write, or where a check cannot read, throws a TypeError: the plugin then
// steps aside (mutating) or refuses with 400 (validating), and the schema names the field.

/** `o[k]` as an object to fill in, created when missing. */
function sub(o: Rec, k: string): Rec {
  const v = o[k];
  if (v === undefined || v === null) {
    const created: Rec = {};
    o[k] = created;
    return created;
  }
  return obj(v, k);
}

/** `v` as an object, else a TypeError. */
function obj(v: unknown, what: string): Rec {
  if (isObject(v)) return v;
  throw new TypeError(`${what} must be an object`);
}

/** `v` as an object when it is set (truthy), else undefined; a set non-object is a TypeError. */
function optObj(v: unknown, what: string): Rec | undefined {
  return v ? obj(v, what) : undefined;
}

/** `v` as a list (a fresh empty one when missing), else a TypeError. */
function items(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  throw new TypeError(`${what} must be a list`);
}

/** `v` when it is a list, else empty: for checks that skip what is not a list (the schema reports it). */
function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** A quantity's value; a non-string, non-number is a TypeError. */
function quantity(v: unknown): number | undefined {
  if (typeof v !== "string" && typeof v !== "number") throw new TypeError("a quantity must be a string or a number");
  return parseQuantity(v);
}

export interface KubevirtAdmissionOptions {
  /** Looks up a VMI (the migration validator needs it). On a cluster this is the typed client. */
  getVmi?: (namespace: string, name: string) => Promise<Rec | undefined> | Rec | undefined;
  /** Looks up a VM (a migration of a stopped VM is a cold migration). */
  getVm?: (namespace: string, name: string) => Promise<Rec | undefined> | Rec | undefined;
  /** Lists a namespace's migrations (the migration validator refuses a second one in flight for a VMI). */
  listMigrations?: (namespace: string) => Promise<Rec[]> | Rec[];
  /**
   * Binding of the pod interface added when a VMI declares no interfaces and no networks.
   * KubeVirt's cluster default is "bridge"; tsvirt's embedded mode implements masquerade.
   * @default "masquerade"
   */
  defaultNetworkInterface?: "masquerade" | "bridge";
  /** @default "q35" (KubeVirt's DefaultAMD64MachineType) */
  machineType?: string;
  /** @default 30 (KubeVirt's v1.DefaultGracePeriodSeconds) */
  terminationGracePeriodSeconds?: number;
  /** @default () => new Date().toISOString() */
  now?: () => string;
  /** Firmware UUID for new VMIs that have none. @default crypto.randomUUID */
  uuid?: () => string;
}

export const MIGRATION_VMI_LABEL = "kubevirt.io/vmi-name";

/**
 * A VMIM naming `name` is a cold migration (contract §6): a VM of that name exists, it has no VMI and is not about to
 * start one (a starting VM or one with a VMI takes the live path and its rules).
 */
async function coldMigratable(opts: KubevirtAdmissionOptions, ns: string, name: string): Promise<boolean> {
  if (!opts.getVm || !opts.getVmi) return false;
  if (await opts.getVmi(ns, name)) return false;
  const vm = (await opts.getVm(ns, name)) as VirtualMachine | undefined;
  if (!vm || !isObject(vm.spec) || vm.metadata?.deletionTimestamp) return false;
  return !setToStart(undefined, vm.status?.stateChangeRequests ?? [], runStrategyOf(vm));
}

// ---------------------------------------------------------------------------------------------------------------
// pure defaulting

/** KubeVirt's VMI spec defaults (pkg/defaults SetDefaultVirtualMachineInstanceSpec + SetObjectDefaults). */
export function defaultVmiSpec(spec: unknown, opts: KubevirtAdmissionOptions = {}): Rec {
  const s = obj(structuredClone(spec ?? {}), "spec");
  const d = sub(s, "domain");
  const devices = sub(d, "devices");
  s.architecture ||= "amd64";
  sub(d, "machine").type ||= opts.machineType ?? "q35";
  const requests = rec(field(d, "resources.requests"));
  const limits = rec(field(d, "resources.limits"));
  // guest memory from the memory request/limit
  const memory = sub(d, "memory");
  if (memory.guest === undefined) {
    const mem = requests.memory ?? limits.memory;
    if (mem !== undefined) memory.guest = mem;
  }
  if (Object.keys(memory).length === 0) delete d.memory;
  // cpu request from the cpu limit
  if (limits.cpu !== undefined && requests.cpu === undefined) sub(sub(d, "resources"), "requests").cpu = limits.cpu;
  // guest CPU topology: sockets from the cpu limit/request, else 1
  const cpu = sub(d, "cpu");
  if (!cpu.cores && !cpu.sockets && !cpu.threads) {
    const q = limits.cpu ?? requests.cpu;
    const n = q === undefined ? 1 : Math.max(1, Math.floor(quantity(q) ?? 1));
    cpu.sockets = n;
    cpu.cores = 1;
    cpu.threads = 1;
  }
  const volumes = items(s.volumes, "spec.volumes");
  // containerDisk pull policy
  for (const v of volumes) {
    const cd = optObj(field(v, "containerDisk"), "containerDisk");
    if (cd && !cd.imagePullPolicy) {
      const img = String(cd.image ?? "");
      cd.imagePullPolicy = img.endsWith(":latest") || !/[:@]/.test(img) ? "Always" : "IfNotPresent";
    }
  }
  // the pod network and its interface, when nothing is declared
  const autoattach = devices.autoattachPodInterface;
  if (
    autoattach !== false &&
    items(s.networks, "spec.networks").length === 0 &&
    items(devices.interfaces, "interfaces").length === 0
  ) {
    const binding = opts.defaultNetworkInterface ?? "masquerade";
    devices.interfaces = [{ name: "default", [binding]: {} }];
    s.networks = [{ name: "default", pod: {} }];
  }
  // a disk for every volume that has none (storage/vmispec SetDefaultVolumeDisk)
  const disks = items(devices.disks, "disks");
  const names = new Set<unknown>([
    ...disks.map((x) => field(x, "name")),
    ...items(devices.filesystems, "filesystems").map((x) => field(x, "name")),
  ]);
  for (const v of volumes) {
    const name = field(v, "name");
    if (name && !names.has(name)) {
      disks.push({ name });
      names.add(name);
    }
  }
  if (disks.length > 0) devices.disks = disks;
  // disk device type and bus
  for (const disk of disks) {
    if (!isObject(disk)) continue;
    if (!disk.disk && !disk.cdrom && !disk.lun) disk.disk = {};
    const target = optObj(disk.disk, "disk.disk");
    if (target && !target.bus) target.bus = "virtio";
    const cdrom = optObj(disk.cdrom, "disk.cdrom");
    if (cdrom) {
      cdrom.bus ||= "sata";
      cdrom.readonly ??= true;
      cdrom.tray ||= "closed";
    }
    const lun = optObj(disk.lun, "disk.lun");
    if (lun && !lun.bus) lun.bus = "scsi";
  }
  for (const v of items(devices.inputs, "inputs")) {
    const input = obj(v, "input");
    input.bus ||= "usb";
    input.type ||= "tablet";
  }
  d.features ??= {};
  sub(d, "firmware").uuid ||= (opts.uuid ?? randomUUID)();
  s.terminationGracePeriodSeconds ??= opts.terminationGracePeriodSeconds ?? 30;
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// pure validation

function dup(field: string, value: unknown): StatusCause {
  return { type: "FieldValueDuplicate", field, message: `${field}: Duplicate value: ${JSON.stringify(value)}` };
}
function invalid(field: string, message: string): StatusCause {
  return { type: "FieldValueInvalid", field, message };
}

const VOLUME_SOURCES = [
  "hostDisk",
  "persistentVolumeClaim",
  "cloudInitNoCloud",
  "cloudInitConfigDrive",
  "sysprep",
  "containerDisk",
  "ephemeral",
  "emptyDisk",
  "dataVolume",
  "configMap",
  "secret",
  "downwardAPI",
  "serviceAccount",
  "downwardMetrics",
  "memoryDump",
  "containerPath",
];

function checkQuantity(value: unknown, field: string, causes: StatusCause[], positive = false): void {
  if (value === undefined || value === null) return;
  const n = quantity(value);
  if (n === undefined) causes.push(invalid(field, `${field}: quantities must match the regular expression`));
  else if (positive && n <= 0) causes.push(invalid(field, `${field}: must be greater than zero`));
}

/**
 * hostDisk: what admission can know without the node (which checks the path against its --host-disk-root after
 * resolving symlinks): an absolute path without ".." components, KubeVirt's types, a capacity for DiskOrCreate.
 */
export function hostDiskCauses(hd: unknown, p: string): StatusCause[] {
  if (!isObject(hd)) return [];
  const causes: StatusCause[] = [];
  const path = hd.path;
  if (typeof path !== "string" || !path.startsWith("/"))
    causes.push(invalid(`${p}.path`, `${p}.path must be an absolute path`));
  else if (path.split("/").includes("..") || path.includes("\0"))
    causes.push(invalid(`${p}.path`, `${p}.path must not contain ".." components`));
  if (hd.type !== "Disk" && hd.type !== "DiskOrCreate")
    causes.push({
      type: "FieldValueNotSupported",
      field: `${p}.type`,
      message: `${p}.type: Unsupported value: "${hd.type}": supported values: "Disk", "DiskOrCreate"`,
    });
  else if (hd.type === "DiskOrCreate" && (hd.capacity === undefined || hd.capacity === null))
    causes.push({
      type: "FieldValueRequired",
      field: `${p}.capacity`,
      message: `${p}.capacity is required for DiskOrCreate`,
    });
  return causes;
}

const PULL_POLICIES = new Set<unknown>(["Always", "IfNotPresent", "Never"]);

/** KubeVirt's semantic checks of a VMI spec (vmi-create-admitter ValidateVirtualMachineInstanceSpec, subset). */
export function validateVmiSpec(spec: unknown, path = "spec"): StatusCause[] {
  const causes: StatusCause[] = [];
  if (!spec || typeof spec !== "object") return causes;
  const s = rec(spec);
  const devices = rec(field(s, "domain.devices"));
  // entries as objects: a non-object entry reads as one without fields (the schema reports it)
  const volumes = list(s.volumes).map(rec);
  const disks = list(devices.disks).map(rec);
  const filesystems = list(devices.filesystems).map(rec);
  const interfaces = list(devices.interfaces).map(rec);
  const networks = list(s.networks).map(rec);

  const volumeNames = new Set<unknown>();
  volumes.forEach((v, i) => {
    const p = `${path}.volumes[${i}]`;
    if (volumeNames.has(v.name)) causes.push(dup(`${p}.name`, v.name));
    volumeNames.add(v.name);
    const sources = VOLUME_SOURCES.filter((k) => v[k] !== undefined && v[k] !== null);
    if (sources.length === 0)
      causes.push({ type: "FieldValueRequired", field: p, message: `${p} must have exactly one source type set` });
    else if (sources.length > 1)
      causes.push(invalid(p, `${p} must have exactly one source type set, found ${sources.join(", ")}`));
    checkQuantity(field(v.emptyDisk, "capacity"), `${p}.emptyDisk.capacity`, causes, true);
    checkQuantity(field(v.hostDisk, "capacity"), `${p}.hostDisk.capacity`, causes, true);
    causes.push(...hostDiskCauses(v.hostDisk, `${p}.hostDisk`));
    const policy = field(v.containerDisk, "imagePullPolicy");
    if (policy !== undefined && !PULL_POLICIES.has(policy))
      causes.push({
        type: "FieldValueNotSupported",
        field: `${p}.containerDisk.imagePullPolicy`,
        message: `${p}.containerDisk.imagePullPolicy: Unsupported value: "${policy}": supported values: "Always", "IfNotPresent", "Never"`,
      });
  });

  const diskNames = new Set<unknown>();
  const bootOrders = new Map<unknown, string>();
  disks.forEach((disk, i) => {
    const p = `${path}.domain.devices.disks[${i}]`;
    if (diskNames.has(disk.name)) causes.push(dup(`${p}.name`, disk.name));
    diskNames.add(disk.name);
    if (disk.name !== undefined && !volumeNames.has(disk.name))
      causes.push(invalid(`${p}.name`, `${p}.name '${disk.name}' not found.`));
    const targets = ["disk", "lun", "cdrom"].filter((k) => disk[k] !== undefined && disk[k] !== null);
    if (targets.length > 1) causes.push(invalid(p, `${p} can only have a single target type defined`));
    if (disk.bootOrder !== undefined) {
      if (Number(disk.bootOrder) < 1) causes.push(invalid(`${p}.bootOrder`, `${p}.bootOrder must have a value >= 1`));
      else if (bootOrders.has(disk.bootOrder))
        causes.push(invalid(`${p}.bootOrder`, `Boot order for ${p}.bootOrder already set for a different device.`));
      bootOrders.set(disk.bootOrder, p);
    }
  });
  filesystems.forEach((fs, i) => {
    const p = `${path}.domain.devices.filesystems[${i}]`;
    if (diskNames.has(fs.name)) causes.push(dup(`${p}.name`, fs.name));
    if (fs.name !== undefined && !volumeNames.has(fs.name))
      causes.push(invalid(`${p}.name`, `${p}.name '${fs.name}' not found.`));
  });

  const networkNames = new Set<unknown>();
  let podNetworks = 0;
  networks.forEach((n, i) => {
    const p = `${path}.networks[${i}]`;
    if (networkNames.has(n.name)) causes.push(dup(`${p}.name`, n.name));
    networkNames.add(n.name);
    const kinds = ["pod", "multus", "resourceClaim"].filter((k) => n[k] !== undefined && n[k] !== null);
    if (kinds.length !== 1) causes.push(invalid(p, `${p} should have only one network type`));
    if (n.pod) podNetworks++;
  });
  if (podNetworks > 1)
    causes.push(
      invalid(`${path}.networks`, `more than one interface is connected to a pod network in ${path}.networks`),
    );
  const ifaceNames = new Set<unknown>();
  interfaces.forEach((iface, i) => {
    const p = `${path}.domain.devices.interfaces[${i}]`;
    if (ifaceNames.has(iface.name)) causes.push(dup(`${p}.name`, iface.name));
    ifaceNames.add(iface.name);
    if (iface.name !== undefined && !networkNames.has(iface.name))
      causes.push(invalid(`${p}.name`, `${p}.name '${iface.name}' not found.`));
    items(iface.ports, `${p}.ports`).forEach((port, j) => {
      const n = Number(field(port, "port"));
      if (!(n >= 1 && n <= 65535))
        causes.push(invalid(`${p}.ports[${j}].port`, `${p}.ports[${j}].port is out of range.`));
    });
  });
  networks.forEach((n, i) => {
    if (n.name !== undefined && !ifaceNames.has(n.name) && interfaces.length > 0)
      causes.push(invalid(`${path}.networks[${i}].name`, `${path}.networks[${i}].name '${n.name}' not found.`));
  });

  const dom = rec(s.domain);
  checkQuantity(field(dom.memory, "guest"), `${path}.domain.memory.guest`, causes, true);
  for (const kind of ["requests", "limits"]) {
    for (const [k, v] of Object.entries(rec(field(dom.resources, kind)))) {
      checkQuantity(v, `${path}.domain.resources.${kind}.${k}`, causes);
    }
  }
  const reqMemory = field(dom.resources, "requests.memory");
  const limMemory = field(dom.resources, "limits.memory");
  const req = quantity(reqMemory ?? "");
  const lim = quantity(limMemory ?? "");
  if (req !== undefined && lim !== undefined && req > lim)
    causes.push(
      invalid(
        `${path}.domain.resources.requests.memory`,
        `${path}.domain.resources.requests.memory '${reqMemory}' is greater than ${path}.domain.resources.limits.memory '${limMemory}'`,
      ),
    );
  if (typeof s.terminationGracePeriodSeconds === "number" && s.terminationGracePeriodSeconds < 0)
    causes.push(invalid(`${path}.terminationGracePeriodSeconds`, `${path}.terminationGracePeriodSeconds must be >= 0`));
  return causes;
}

/** KubeVirt's VM checks: running/runStrategy exclusive, dataVolumeTemplates, and the template's VMI spec. */
export function validateVmSpec(vmSpec: unknown, path = "spec"): StatusCause[] {
  const causes: StatusCause[] = [];
  if (!vmSpec) return causes;
  const spec = rec(vmSpec);
  if (
    spec.running !== undefined &&
    spec.running !== null &&
    spec.runStrategy !== undefined &&
    spec.runStrategy !== null
  )
    causes.push(
      invalid(
        `${path}.running`,
        `${path}.running and ${path}.runStrategy are mutually exclusive. Note that ${path}.running is deprecated, please use ${path}.runStrategy instead`,
      ),
    );
  const dvNames = new Set<unknown>();
  items(spec.dataVolumeTemplates, `${path}.dataVolumeTemplates`).forEach((dv, i) => {
    const p = `${path}.dataVolumeTemplates[${i}]`;
    const name = field(dv, "metadata.name");
    if (!name)
      causes.push({
        type: "FieldValueRequired",
        field: `${p}.metadata.name`,
        message: `${p}.metadata.name is required`,
      });
    else if (dvNames.has(name)) causes.push(dup(`${p}.metadata.name`, name));
    dvNames.add(name);
    causes.push(...validateDataVolumeSpec(field(dv, "spec"), `${p}.spec`).causes);
  });
  causes.push(...validateVmiSpec(field(spec.template, "spec"), `${path}.template.spec`));
  return causes;
}

/** metav1.LabelSelector semantics (lib/selectors); a selector that does not parse selects nothing. */
function selectorMatches(selector: unknown, labels: unknown): boolean {
  try {
    // unchecked shapes: lib/selectors throws on a malformed selector, and a malformed label set matches nothing
    return labelSelectorMatches(selector as LabelSelectorObject, labels as Labels);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// plugin plumbing

interface Outcome {
  patch?: PatchOp[];
  causes?: StatusCause[];
  warnings?: string[];
}

function respond(req: AdmissionRequest, out: Outcome): AdmissionDecision {
  const res: AdmissionResponse = { uid: req.uid, allowed: true };
  if (out.causes && out.causes.length > 0) {
    res.allowed = false;
    res.status = {
      code: 422,
      reason: "Invalid",
      message: out.causes.map((c) => c.message ?? c.field ?? "").join(", "),
      details: { causes: out.causes },
    };
  }
  if (out.warnings && out.warnings.length > 0) res.warnings = out.warnings;
  if (res.allowed && out.patch && out.patch.length > 0) return { response: res, patch: out.patch };
  return { response: res };
}

function plugin(
  name: string,
  type: "mutating" | "validating",
  match: { group: string; resources: string[]; operations: AdmissionRequest["operation"][] },
  handle: (req: AdmissionRequest) => Outcome | Promise<Outcome>,
): AdmissionPlugin {
  // one decision for both interfaces: in process (typed patch) and as a webhook (AdmissionReview, base64 patch)
  const admit = async (req: AdmissionRequest): Promise<AdmissionDecision> => {
    let out: Outcome;
    try {
      out = await handle(req);
    } catch (e) {
      // Malformed input the schema let through (or no schema ran): defaulting steps aside, validation says no.
      if (type === "mutating") out = {};
      else
        return {
          response: {
            uid: req.uid,
            allowed: false,
            status: { code: 400, reason: "BadRequest", message: `cannot validate the object: ${(e as Error).message}` },
          },
        };
    }
    return respond(req, out);
  };
  return {
    name,
    type,
    matches: (req) =>
      req.resource.group === match.group &&
      match.resources.includes(req.resource.resource) &&
      match.operations.includes(req.operation) &&
      (req.subResource ?? "") === "",
    admit,
    async review(review: AdmissionReview): Promise<AdmissionReview> {
      const req = review.request;
      if (!req) throw new TypeError("Cannot review an AdmissionReview without a request");
      const d = await admit(req);
      const response: AdmissionResponse = { ...d.response };
      if (d.patch) {
        response.patchType = "JSONPatch";
        response.patch = encodePatch(d.patch);
      }
      return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
    },
  };
}

function warningsFor(vmiSpec: unknown, prefix: string): string[] {
  return unimplementedFields(vmiSpec, prefix).map((f) => `${f}: accepted but not implemented by tsvirt yet`);
}

/** KubeVirt's webhooks, mutating ones first, as tsvirt runs them in process. */
export function admissionPlugins(opts: KubevirtAdmissionOptions = {}): AdmissionPlugin[] {
  const now = opts.now ?? (() => new Date().toISOString());
  const kv = "kubevirt.io";
  return [
    plugin(
      "virtualmachineinstances-mutator.kubevirt.io",
      "mutating",
      { group: kv, resources: ["virtualmachineinstances"], operations: ["CREATE"] },
      (req) => {
        const vmi = req.object ?? {};
        const metadata = obj(structuredClone(vmi.metadata ?? {}), "metadata");
        const finalizers = items(metadata.finalizers, "metadata.finalizers");
        if (!finalizers.includes(VMI_FINALIZER)) metadata.finalizers = [...finalizers, VMI_FINALIZER];
        const spec = defaultVmiSpec(vmi.spec ?? {}, opts);
        const status = obj(structuredClone(vmi.status ?? {}), "status");
        const ts = now();
        status.phase = "Pending";
        status.phaseTransitionTimestamps = [
          ...items(status.phaseTransitionTimestamps, "status.phaseTransitionTimestamps"),
          { phase: "Pending", phaseTransitionTimestamp: ts },
        ];
        const g = field(spec, "domain.memory.guest");
        if (g !== undefined && !status.memory) status.memory = { guestAtBoot: g, guestCurrent: g, guestRequested: g };
        const cpu = field(spec, "domain.cpu");
        if (cpu && !status.currentCPUTopology) {
          const { sockets, cores, threads } = rec(cpu);
          status.currentCPUTopology = { sockets, cores, threads };
        }
        return {
          patch: [
            { op: "add", path: "/metadata", value: metadata },
            { op: "add", path: "/spec", value: spec },
            { op: "add", path: "/status", value: status },
          ],
        };
      },
    ),
    plugin(
      "virtualmachines-mutator.kubevirt.io",
      "mutating",
      { group: kv, resources: ["virtualmachines"], operations: ["CREATE", "UPDATE"] },
      (req) => {
        // one operation per defaulted field (no copy of the spec): runStrategy, architecture, machine type
        const spec = req.object?.spec;
        if (spec === undefined || spec === null)
          return { patch: [{ op: "add", path: "/spec", value: { runStrategy: "Halted" } }] };
        if (!isObject(spec)) return {};
        const patch: PatchOp[] = [];
        if (
          (spec.running === undefined || spec.running === null) &&
          (spec.runStrategy === undefined || spec.runStrategy === null)
        )
          patch.push({ op: "add", path: "/spec/runStrategy", value: "Halted" });
        const t = field(spec.template, "spec");
        if (field(t, "domain")) {
          // a malformed domain (the schema let it through): defaulting steps aside, as on a TypeError before
          if (!isObject(t) || !isObject(t.domain)) return {};
          const machine = t.domain.machine;
          if (machine !== undefined && machine !== null && !isObject(machine)) return {};
          const type = opts.machineType ?? "q35";
          if (!t.architecture) patch.push({ op: "add", path: "/spec/template/spec/architecture", value: "amd64" });
          if (machine === undefined || machine === null)
            patch.push({ op: "add", path: "/spec/template/spec/domain/machine", value: { type } });
          else if (!machine.type)
            patch.push({ op: "add", path: "/spec/template/spec/domain/machine/type", value: type });
        }
        return { patch };
      },
    ),
    plugin(
      "migration-create-mutator.kubevirt.io",
      "mutating",
      { group: kv, resources: ["virtualmachineinstancemigrations"], operations: ["CREATE"] },
      async (req) => {
        // No kubevirt.io/migrationJobFinalize here: a finalizer is added only by the component that removes it (the
        // migration controller, when there is one), or the migration could never be deleted.
        const m = req.object ?? {};
        const vmiName = field(m.spec, "vmiName");
        if (!vmiName) return {};
        const labels = rec(field(m.metadata, "labels"));
        const want: Rec = { ...labels };
        if (want[MIGRATION_VMI_LABEL] === undefined) want[MIGRATION_VMI_LABEL] = vmiName;
        // tsvirt's cold migration: a stopped VM's VMIM is labelled so (the label is admission's, never the user's)
        delete want[ColdMigration.modeLabel];
        const ns = req.namespace ?? String(field(m.metadata, "namespace") ?? "default");
        if (await coldMigratable(opts, ns, String(vmiName))) want[ColdMigration.modeLabel] = ColdMigration.mode;
        if (JSON.stringify(want) === JSON.stringify(labels)) return {};
        const metadata = obj(structuredClone(m.metadata ?? {}), "metadata");
        metadata.labels = want;
        return { patch: [{ op: "add", path: "/metadata", value: metadata }] };
      },
    ),
    plugin(
      "virtualmachineinstances-create-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["virtualmachineinstances"], operations: ["CREATE"] },
      (req) => {
        const spec = req.object?.spec;
        return { causes: validateVmiSpec(spec, "spec"), warnings: warningsFor(spec, "spec") };
      },
    ),
    plugin(
      "virtualmachineinstances-update-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["virtualmachineinstances"], operations: ["UPDATE"] },
      (req) => {
        const next = req.object?.spec;
        const prev = req.oldObject?.spec;
        if (JSON.stringify(canonical(next)) === JSON.stringify(canonical(prev))) return {};
        // as KubeVirt's vmi-update-admitter: only KubeVirt's own service accounts (they hotplug and migrate)
        if (isKubeVirtServiceAccount(req.userInfo.username)) return {};
        return {
          causes: [{ type: "FieldValueNotSupported", field: "spec", message: "update of VMI object is restricted" }],
        };
      },
    ),
    plugin(
      "virtualmachine-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["virtualmachines"], operations: ["CREATE", "UPDATE"] },
      (req) => {
        const spec = req.object?.spec;
        return {
          causes: validateVmSpec(spec, "spec"),
          warnings: warningsFor(field(spec, "template.spec"), "spec.template.spec"),
        };
      },
    ),
    plugin(
      "virtualmachinereplicaset-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["virtualmachineinstancereplicasets"], operations: ["CREATE", "UPDATE"] },
      (req) => {
        const spec = rec(req.object?.spec);
        const causes = validateVmiSpec(field(spec.template, "spec"), "spec.template.spec");
        if (spec.selector && !selectorMatches(spec.selector, field(spec.template, "metadata.labels")))
          causes.push(invalid("spec.selector", "selector does not match labels."));
        return { causes, warnings: warningsFor(field(spec.template, "spec"), "spec.template.spec") };
      },
    ),
    plugin(
      "virtualmachinepool-validator.kubevirt.io",
      "validating",
      { group: "pool.kubevirt.io", resources: ["virtualmachinepools"], operations: ["CREATE", "UPDATE"] },
      (req) => {
        const spec = rec(req.object?.spec);
        const vmSpec = field(spec.virtualMachineTemplate, "spec");
        const causes = validateVmSpec(vmSpec, "spec.virtualMachineTemplate.spec");
        if (spec.selector && !selectorMatches(spec.selector, field(spec.virtualMachineTemplate, "metadata.labels")))
          causes.push(invalid("spec.selector", "selector does not match labels."));
        return {
          causes,
          warnings: warningsFor(field(vmSpec, "template.spec"), "spec.virtualMachineTemplate.spec.template.spec"),
        };
      },
    ),
    plugin(
      "migration-create-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["virtualmachineinstancemigrations"], operations: ["CREATE"] },
      async (req) => {
        const m = req.object ?? {};
        const refused = priorityRefused(req, field(m.spec, "priority"));
        if (refused) return { causes: [refused] };
        const vmiName = field(m.spec, "vmiName");
        if (!vmiName)
          return {
            causes: [{ type: "FieldValueRequired", field: "spec.vmiName", message: "spec.vmiName is required" }],
          };
        if (!opts.getVmi) return {};
        const ns = req.namespace ?? String(field(m.metadata, "namespace") ?? "default");
        // A cold migration (the mutator labelled it: a stopped VM) is accepted; the VM must still be one.
        if (isColdMigration({ metadata: { labels: rec(field(m.metadata, "labels")) as Record<string, string> } })) {
          if (await coldMigratable(opts, ns, String(vmiName))) return {};
          return {
            causes: [invalid("spec.vmiName", `the VM "${ns}/${vmiName}" is not stopped: it cannot be cold-migrated`)],
          };
        }
        const vmi = await opts.getVmi(ns, String(vmiName));
        if (!vmi) return { causes: [invalid("spec.vmiName", `the VMI "${ns}/${vmiName}" does not exist`)] };
        const phase = field(vmi.status, "phase");
        if (phase === "Succeeded" || phase === "Failed")
          return { causes: [invalid("spec.vmiName", `Cannot migrate VMI "${vmiName}": it is in phase ${phase}`)] };
        // KubeVirt's migration-create-admitter: a VMI that cannot migrate, or one with a migration in flight, is
        // refused here rather than accepted and then failed by the controller.
        const migratable = list(field(vmi.status, "conditions")).find((c) => field(c, "type") === "LiveMigratable");
        if (field(migratable, "status") === "False") {
          const why = `Reason: ${field(migratable, "reason")}, Message: ${field(migratable, "message")}`;
          return { causes: [invalid("spec.vmiName", `Cannot migrate VMI, ${why}`)] };
        }
        const active = (await opts.listMigrations?.(ns))?.find(
          (o) =>
            field(o.spec, "vmiName") === vmiName &&
            !field(o.metadata, "deletionTimestamp") &&
            !isFinishedMigration(o as VirtualMachineInstanceMigration),
        );
        if (active) {
          const name = field(active.metadata, "name");
          const msg = `in-flight migration detected. Active migration job (${name}) is currently already in progress for VMI ${vmiName}.`;
          return { causes: [invalid("spec.vmiName", msg)] };
        }
        return {};
      },
    ),
    plugin(
      "datavolume-validate.cdi.kubevirt.io",
      "validating",
      { group: "cdi.kubevirt.io", resources: ["datavolumes"], operations: ["CREATE", "UPDATE"] },
      (req) => {
        if (req.operation === "CREATE") {
          const v = validateDataVolumeSpec(req.object?.spec, "spec");
          const user = { username: req.userInfo.username, groups: req.userInfo.groups ?? [] };
          const ns = req.namespace ?? String(field(req.object?.metadata, "namespace") ?? "default");
          const cross = crossNamespaceCloneCauses(req.object?.spec, ns, (a) => authorize(user, a).allowed);
          return { ...v, causes: [...v.causes, ...cross] };
        }
        // CDI's rule: the spec is immutable once created (metadata and status may change)
        if (JSON.stringify(canonical(req.object?.spec)) === JSON.stringify(canonical(req.oldObject?.spec))) return {};
        return { causes: [invalid("spec", "spec: Cannot update DataVolume spec: it is immutable")] };
      },
    ),
    plugin(
      "cdiconfig-validate.cdi.kubevirt.io",
      "validating",
      { group: "cdi.kubevirt.io", resources: ["cdiconfigs"], operations: ["CREATE", "UPDATE"] },
      (req) => ({ warnings: cdiConfigWarnings(req.object) }),
    ),
    plugin(
      "migration-policy-validator.migrations.kubevirt.io",
      "validating",
      { group: "migrations.kubevirt.io", resources: ["migrationpolicies"], operations: ["CREATE", "UPDATE"] },
      (req) => ({ warnings: migrationPolicyWarnings(req.object) }),
    ),
    inertKindsPlugin(),
    plugin(
      "kubevirt-update-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["kubevirts"], operations: ["CREATE", "UPDATE"] },
      (req) => {
        const o = req.object ?? {};
        const warnings = unimplementedKubeVirtFields(o.spec, "spec").map(
          (f) => `${f}: accepted but not acted on by tsvirt yet`,
        );
        if (
          field(o.metadata, "name") !== KUBEVIRT_NAME ||
          (req.namespace ?? field(o.metadata, "namespace")) !== KUBEVIRT_NAMESPACE
        )
          warnings.unshift(`only ${KUBEVIRT_NAMESPACE}/${KUBEVIRT_NAME} is read; this KubeVirt object is ignored`);
        return { warnings };
      },
    ),
    plugin(
      "migration-update-validator.kubevirt.io",
      "validating",
      { group: kv, resources: ["virtualmachineinstancemigrations"], operations: ["UPDATE"] },
      (req) => {
        const next = field(req.object?.spec, "priority");
        const prev = field(req.oldObject?.spec, "priority");
        const refused = next === prev ? undefined : priorityRefused(req, next ?? null);
        return refused ? { causes: [refused] } : {};
      },
    ),
  ];
}

const CONTROLLER_USER = serviceAccountUser(SERVICE_ACCOUNTS.controller);

/** Only virt-controller sets a migration's priority (KubeVirt's migration priority queue, VEP 62). */
function priorityRefused(req: AdmissionRequest, priority: unknown): StatusCause | undefined {
  if (priority === undefined || req.userInfo.username === CONTROLLER_USER) return undefined;
  return {
    type: "FieldValueForbidden",
    field: "spec.priority",
    message: `spec.priority may be set only by ${CONTROLLER_USER}`,
  };
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (isObject(v)) {
    const out: Rec = {};
    for (const k of Object.keys(v).sort()) out[k] = canonical(v[k]);
    return out;
  }
  return v;
}

/**
 * MigrationPolicy fields the launchers do not act on: `experimental`. (Past the completion budget the launcher
 * switches to post-copy or pauses the guest as allowPostCopy/allowWorkloadDisruption say, as KubeVirt's monitor.)
 */
export function migrationPolicyWarnings(obj: unknown): string[] {
  const spec = rec(field(obj, "spec"));
  return spec.experimental !== undefined && spec.experimental !== null
    ? ["spec.experimental: accepted but not acted on by tsvirt"]
    : [];
}
