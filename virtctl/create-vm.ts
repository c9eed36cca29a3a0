// virtctl create vm: prints a VirtualMachine manifest (no API call), with KubeVirt's flags: --name, --run-strategy,
// --termination-grace-period, --memory, --instancetype, --preference, --volume-containerdisk, --volume-pvc,
// --volume-blank, --cloud-init, --cloud-init-user-data, --cloud-init-network-data, --user, --ssh-key, --password-file.
// Volume flags take comma-separated key:value params (src:IMAGE,name:NAME,bootorder:N), as KubeVirt's do.

import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import type { Disk, DomainSpec, RunStrategy, VirtualMachine, Volume } from "../client/index.js";
import type { Io, VerbContext } from "./context.js";

export interface CreateVmFlags {
  name?: string;
  runStrategy?: string;
  terminationGracePeriod?: string;
  memory?: string;
  instancetype?: string;
  preference?: string;
  volumeContainerdisk?: string[];
  volumePvc?: string[];
  volumeBlank?: string[];
  cloudInit?: string;
  cloudInitUserData?: string;
  cloudInitNetworkData?: string;
  user?: string;
  sshKey?: string[];
  passwordFile?: string;
}

const RUN_STRATEGIES: readonly RunStrategy[] = [
  "Always",
  "RerunOnFailure",
  "Manual",
  "Halted",
  "Once",
  "WaitAsReceiver",
];
const NAME_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** "src:img,name:disk,bootorder:1" → {src: "img", name: "disk", bootorder: "1"}; unknown keys are errors. */
export function parseParams(flag: string, value: string, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(",")) {
    const i = part.indexOf(":");
    if (i <= 0) throw new Error(`failed to parse "--${flag}" flag: params need to have at least one colon: ${part}`);
    const k = part.slice(0, i);
    if (!allowed.includes(k)) throw new Error(`failed to parse "--${flag}" flag: unknown param(s): ${part}`);
    out[k] = part.slice(i + 1);
  }
  return out;
}

function bootOrder(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`failed to parse "--${flag}" flag: bootorder must be greater than 0`);
  return n;
}

function randomName(): string {
  return `vm-${randomBytes(3).toString("hex").slice(0, 5)}`;
}

export function createVm(
  f: CreateVmFlags,
  readFile: (p: string) => string = (p) => readFileSync(p, "utf8"),
): VirtualMachine {
  const name = f.name ?? randomName();
  if (!NAME_RE.test(name) || name.length > 63) throw new Error(`invalid name "${name}": must be a DNS-1123 label`);
  const runStrategy = (f.runStrategy ?? "Always") as RunStrategy;
  if (!RUN_STRATEGIES.includes(runStrategy)) {
    throw new Error(
      `failed to parse "--run-strategy" flag: invalid run strategy "${f.runStrategy}", supported values are: ${RUN_STRATEGIES.join(", ")}`,
    );
  }
  const grace = Number(f.terminationGracePeriod ?? "180");
  if (!Number.isInteger(grace) || grace < 0)
    throw new Error(`invalid --termination-grace-period "${f.terminationGracePeriod}"`);

  const volumes: Volume[] = [];
  const disks: Disk[] = [];
  const used = new Set<string>();
  const addVolume = (volName: string, source: Omit<Volume, "name">, order: number | undefined, flag: string) => {
    if (used.has(volName))
      throw new Error(`failed to parse "--${flag}" flag: there is already a volume with name "${volName}"`);
    used.add(volName);
    volumes.push({ name: volName, ...source });
    if (order !== undefined) disks.push({ name: volName, bootOrder: order });
  };
  (f.volumeContainerdisk ?? []).forEach((v, i) => {
    const p = parseParams("volume-containerdisk", v, ["src", "name", "bootorder"]);
    if (!p.src) throw new Error(`failed to parse "--volume-containerdisk" flag: src must be specified`);
    addVolume(
      p.name ?? `${name}-containerdisk-${i}`,
      { containerDisk: { image: p.src } },
      bootOrder("volume-containerdisk", p.bootorder),
      "volume-containerdisk",
    );
  });
  (f.volumePvc ?? []).forEach((v) => {
    const p = parseParams("volume-pvc", v, ["src", "name", "bootorder"]);
    if (!p.src) throw new Error(`failed to parse "--volume-pvc" flag: src must be specified`);
    const claim = p.src.includes("/") ? p.src.split("/")[1]! : p.src;
    addVolume(
      p.name ?? claim,
      { persistentVolumeClaim: { claimName: claim } },
      bootOrder("volume-pvc", p.bootorder),
      "volume-pvc",
    );
  });
  (f.volumeBlank ?? []).forEach((v, i) => {
    const p = parseParams("volume-blank", v, ["size", "name"]);
    if (!p.size) throw new Error(`failed to parse "--volume-blank" flag: size must be specified`);
    addVolume(p.name ?? `${name}-emptydisk-${i}`, { emptyDisk: { capacity: p.size } }, undefined, "volume-blank");
  });

  const cloudInit = f.cloudInit ?? "nocloud";
  if (!["nocloud", "configdrive", "none"].includes(cloudInit)) {
    throw new Error(
      `failed to parse "--cloud-init" flag: invalid cloud-init data source type "${cloudInit}", supported values are: nocloud, configdrive, none`,
    );
  }
  const generated = f.user !== undefined || (f.sshKey?.length ?? 0) > 0 || f.passwordFile !== undefined;
  if (f.cloudInitUserData && generated) {
    throw new Error('"--cloud-init-user-data" cannot be combined with "--user", "--ssh-key" or "--password-file"');
  }
  let userData: Record<string, string> | undefined;
  if (f.cloudInitUserData) {
    const decoded = Buffer.from(f.cloudInitUserData, "base64");
    if (
      decoded.length === 0 ||
      decoded.toString("base64").replace(/=+$/, "") !== f.cloudInitUserData.replace(/=+$/, "")
    ) {
      throw new Error('failed to parse "--cloud-init-user-data" flag: not valid base64');
    }
    userData = { userDataBase64: f.cloudInitUserData };
  } else if (generated) {
    const lines = ["#cloud-config"];
    if (f.user) lines.push(`user: ${f.user}`);
    if (f.passwordFile) {
      lines.push(`password: ${readFile(f.passwordFile).trim()}`, "chpasswd: { expire: False }");
    }
    if (f.sshKey?.length) lines.push("ssh_authorized_keys:", ...f.sshKey.map((k) => `  - ${k}`));
    userData = { userData: `${lines.join("\n")}\n` };
  }
  if (userData || f.cloudInitNetworkData) {
    if (cloudInit === "none") throw new Error('"--cloud-init none" cannot be combined with cloud-init data');
    const src: Record<string, string> = { ...(userData ?? {}) };
    if (f.cloudInitNetworkData) src.networkDataBase64 = f.cloudInitNetworkData;
    addVolume(
      "cloudinitdisk",
      cloudInit === "configdrive" ? { cloudInitConfigDrive: src } : { cloudInitNoCloud: src },
      undefined,
      "cloud-init",
    );
  }

  const domain: DomainSpec = { devices: disks.length > 0 ? { disks } : {}, resources: {} };
  if (!f.instancetype) domain.memory = { guest: f.memory ?? "512Mi" };
  else if (f.memory) throw new Error('"--memory" cannot be combined with "--instancetype"');
  const vm: VirtualMachine = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name },
    spec: {
      runStrategy,
      template: {
        spec: {
          domain,
          terminationGracePeriodSeconds: grace,
          ...(volumes.length > 0 ? { volumes } : {}),
        },
      },
    },
  };
  if (f.instancetype) {
    const [kind, n] = f.instancetype.includes("/")
      ? f.instancetype.split("/", 2)
      : ["virtualmachineclusterinstancetype", f.instancetype];
    vm.spec.instancetype = { kind, name: n };
  }
  if (f.preference) {
    const [kind, n] = f.preference.includes("/")
      ? f.preference.split("/", 2)
      : ["virtualmachineclusterpreference", f.preference];
    vm.spec.preference = { kind, name: n };
  }
  return vm;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerCreate(program: Command, ctx: VerbContext): void {
  const create = program.command("create").description("Create a manifest for the specified kind.");
  create
    .command("vm")
    .description("Create a VirtualMachine manifest.")
    .option("--name <name>", "name of the VM (random if unset)")
    .option("--run-strategy <strategy>", "run strategy of the VM", "Always")
    .option("--termination-grace-period <seconds>", "termination grace period of the VM", "180")
    .option("--memory <quantity>", "guest memory (default 512Mi without an instancetype)")
    .option("--instancetype <[kind/]name>", "instancetype of the VM")
    .option("--preference <[kind/]name>", "preference of the VM")
    .option(
      "--volume-containerdisk <params>",
      "containerDisk volume: src:IMAGE[,name:NAME][,bootorder:N] (repeatable)",
      collect,
    )
    .option("--volume-pvc <params>", "PVC volume: src:[NS/]PVC[,name:NAME][,bootorder:N] (repeatable)", collect)
    .option("--volume-blank <params>", "blank disk: size:QUANTITY[,name:NAME] (repeatable)", collect)
    .option("--cloud-init <type>", "cloud-init data source: nocloud, configdrive or none", "nocloud")
    .option("--cloud-init-user-data <base64>", "base64-encoded cloud-init user data")
    .option("--cloud-init-network-data <base64>", "base64-encoded cloud-init network data")
    .option("--user <name>", "user to create with cloud-init")
    .option("--ssh-key <key>", "SSH public key for the user (repeatable)", collect)
    .option("--password-file <path>", "file holding the user's password")
    .action((f: CreateVmFlags) => printVm(ctx.io, f, ctx));
}

async function printVm(io: Io, f: CreateVmFlags, ctx: VerbContext): Promise<void> {
  try {
    // (loaded here: the YAML package is most of what every other verb would load at start)
    const { stringify } = await import("yaml");
    io.out(stringify(createVm(f)));
  } catch (err) {
    io.err(`Error: ${(err as Error).message}\n`);
    ctx.exit(1);
  }
}
