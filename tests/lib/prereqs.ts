// What the tests need from the machine, checked one way everywhere. hack/test.sh runs this file before any test
// (one line naming what is missing, exit 1); every suite that needs a tool calls requirePrereqs(), so a missing one
// FAILS that suite with the same line. Nothing here ever skips a test.
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

/** shared/ sits beside the project root (in CI: a copy beside the clone). */
export const SHARED = fileURLToPath(new URL("../../../shared/", import.meta.url));
/** The external conformance probe (stock kubectl command sequence). */
export const PROBE = process.env.KUBECTL_PROBE ?? join(SHARED, "conformance", "kubectl-probe.sh");
/** KubeVirt's example manifests. */
export const EXAMPLES = process.env.KUBEVIRT_EXAMPLES ?? join(SHARED, "examples", "kubevirt");

/** Programs the tests (and the code they drive) run, with the oldest major.minor that works where it matters. */
interface Tool {
  min?: [number, number];
  version?: string[];
}
const TOOLS = {
  kubectl: { min: [1, 29], version: ["version", "--client"] }, // older clients read /openapi/v2 (README)
  "qemu-system-x86_64": { min: [9, 0], version: ["--version"] }, // QEMU 7.2 + TCG corrupts memory in migration
  "qemu-img": {},
  "qemu-io": {},
  libvirtd: {},
  virsh: {},
  "virt-xml-validate": {},
  "docker-registry": {},
  skopeo: {},
  curl: {}, // bench:storage (the upload baseline)
  zstd: {},
  xorriso: {},
  openssl: {},
  ip: {},
  iptables: {},
  nsenter: {},
  setpriv: {}, // the node agent's same-node copy runs under `setpriv --pdeathsig KILL`
  unshare: {},
  mount: {},
  busybox: {},
  // tests/guest/build.sh (the test guest, built from Debian packages)
  "apt-get": {},
  "dpkg-deb": {},
  depmod: {},
  cpio: {},
  "mkfs.vfat": {},
  mcopy: {},
  syslinux: {},
  flock: {},
} satisfies Record<string, Tool>;

export type Prereq = "root" | "shared" | keyof typeof TOOLS;

/** The test guest's build (tests/guest/build.sh). */
export const GUEST: Prereq[] = ["qemu-img", "apt-get", "dpkg-deb", "depmod", "cpio", "mkfs.vfat", "mcopy", "syslinux"];
/** A private libvirtd running QEMU (tests/guest/libvirt.ts, the launcher). */
export const LIBVIRT: Prereq[] = ["root", "libvirtd", "virsh", "unshare", "mount", "qemu-system-x86_64", "qemu-img"];
/** A real `tsvirt up` with a registry and the test guest (tests/lib/up.ts). */
export const CLUSTER: Prereq[] = [
  ...LIBVIRT,
  ...GUEST,
  "kubectl",
  "docker-registry",
  "ip",
  "iptables",
  "nsenter",
  "setpriv",
  "busybox",
  "xorriso",
];
/** Everything: what hack/test.sh checks before a run. */
export const ALL: Prereq[] = ["root", "shared", ...(Object.keys(TOOLS) as (keyof typeof TOOLS)[])];

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, bin);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

const cache = new Map<Prereq, string | undefined>();

/** Why `p` is unusable here ("kubectl (not on PATH)"), or undefined when it is fine. */
function problem(p: Prereq): string | undefined {
  if (p === "root") return process.getuid?.() === 0 ? undefined : `root (running as uid ${process.getuid?.()})`;
  if (p === "shared") {
    for (const f of [PROBE, EXAMPLES]) if (!existsSync(f)) return `../shared (no ${f})`;
    return undefined;
  }
  const tool: Tool = TOOLS[p];
  const path = onPath(p);
  if (!path) return `${p} (not on PATH)`;
  if (!tool.min || !tool.version) return undefined;
  const r = spawnSync(path, tool.version, { encoding: "utf8", timeout: 30_000 });
  const m = /v?(\d+)\.(\d+)/.exec(`${r.stdout}`.replace(/go\d+\.\d+/g, ""));
  const want = tool.min.join(".");
  if (!m) return `${p} (${path}: cannot read its version, need >= ${want})`;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  if (maj < tool.min[0] || (maj === tool.min[0] && min < tool.min[1]))
    return `${p} (${path} is ${maj}.${min}, need >= ${want})`;
  return undefined;
}

/** Every unusable prerequisite among `needs`, each as one short phrase naming it. */
export function missingPrereqs(needs: readonly Prereq[] = ALL): string[] {
  const out: string[] = [];
  for (const p of new Set(needs)) {
    if (!cache.has(p)) cache.set(p, problem(p));
    const why = cache.get(p);
    if (why) out.push(why);
  }
  return out;
}

/** Throws (so the calling test or hook FAILS) with one line naming every unusable prerequisite among `needs`. */
export function requirePrereqs(...needs: Prereq[]): void {
  const m = missingPrereqs(needs);
  if (m.length) throw new Error(`missing prerequisite${m.length > 1 ? "s" : ""}: ${m.join(", ")}`);
}

// `node --import tsx tests/lib/prereqs.ts`: hack/test.sh's check; prints the one line and exits 1.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    requirePrereqs(...ALL);
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
