// The importer pod shape (label cdi.kubevirt.io=importer, controller owner a DataVolume): resolves the DV's source
// (blank / http / registry) and target from the API, writes job.json (credentials and CA bundles in 0600 files),
// starts the pod's egress proxy and progress relay, and runs `tsvirt importer --job <pod dir>/job.json`.
import { fileURLToPath } from "node:url";
import { parseReference, type RegistriesConfig, resolveSources } from "../../images/index.js";
import type { JobSource, WorkerJob } from "../../storage/importer/index.js";
import { urlHostPort } from "../../storage/importer/index.js";
import type { PodShape } from "../pod-shapes.js";
import type { ApiClient } from "../ports.js";
import {
  caBundle,
  DATA_VOLUME_NAME,
  type DvObject,
  endpointCredentials,
  matchDvWorker,
  ownerDataVolume,
  podClaim,
  resolveTarget,
  type WorkerJobDeps,
  workerPaths,
  writeJob,
  writePrivate,
} from "./job.js";
import type { WorkerServices } from "./services.js";

export interface WorkerShapeDeps extends WorkerJobDeps {
  api: ApiClient;
  /** The node's registry list in force (handler/registries.ts). */
  registries: () => Promise<RegistriesConfig>;
  services: WorkerServices;
  /** The tsvirt entry point the worker runs (default: this build's cmd/tsvirt.js). */
  tsvirtJs?: string;
}

/** The worker's argv: `node tsvirt.js <role-cmd> --job <job>` (never anything from the pod spec). */
export function workerArgv(d: Pick<WorkerShapeDeps, "tsvirtJs">, roleCmd: string, job: string): string[] {
  const js = d.tsvirtJs ?? fileURLToPath(new URL("../../cmd/tsvirt.js", import.meta.url));
  return [process.execPath, js, roleCmd, "--job", job];
}

/** Pure: the host:ports a registry import may reach: every registry of the list for the image (80/443 when no port). */
export function registryEgress(image: string, registries: RegistriesConfig): string[] {
  const out = new Set<string>();
  for (const s of resolveSources(parseReference(image), registries)) {
    // (a URL drops a default port; urlHostPort puts it back)
    if (/:\d+$/.test(s.registry)) out.add(urlHostPort(new URL(`https://${s.registry}`)));
    else {
      out.add(urlHostPort(new URL(`https://${s.registry}`)));
      out.add(urlHostPort(new URL(`http://${s.registry}`)));
    }
  }
  return [...out];
}

/**
 * The job's source from the DV's spec.source. What the worker cannot use (a bad URL, an unsupported source) becomes
 * an `invalid` source the worker reports as InvalidSource (fatal), so the reason reaches the DV through the usual
 * termination message; missing Secrets/ConfigMaps reject (the pod fails to start; the DV controller retries).
 */
export async function importSource(
  d: WorkerShapeDeps,
  dv: DvObject,
  podDir: string,
): Promise<{ source: JobSource; allow: string[] }> {
  const ns = dv.metadata.namespace ?? "default";
  const name = dv.metadata.name ?? "";
  const src = dv.spec.source ?? {};
  const invalidSource = (message: string) => ({ source: { kind: "invalid" as const, message }, allow: [] });
  if (src.blank) return { source: { kind: "blank" }, allow: [] };
  if (src.http) {
    let url: URL;
    try {
      url = new URL(src.http.url);
    } catch {
      return invalidSource(`spec.source.http.url "${src.http.url}" is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return invalidSource(`spec.source.http.url: scheme ${url.protocol} is not http or https`);
    }
    if (url.username || url.password) return invalidSource("spec.source.http.url: credentials go in secretRef");
    const cs = src.http.checksum;
    if (cs !== undefined && !/^(md5|sha1|sha256|sha512):[0-9a-fA-F]+$/.test(cs)) {
      return invalidSource(`spec.source.http.checksum "${cs}" is not <md5|sha1|sha256|sha512>:<hex>`);
    }
    if (src.http.extraHeaders?.length || src.http.secretExtraHeaders?.length) {
      return invalidSource("spec.source.http: extraHeaders and secretExtraHeaders are not supported");
    }
    const source: JobSource = { kind: "http", url: url.href, ...(cs ? { checksum: cs.toLowerCase() } : {}) };
    await writeCertRefs(d, ns, name, "spec.source.http", src.http, podDir, source);
    return { source, allow: [urlHostPort(url)] };
  }
  if (src.registry) {
    const raw = src.registry.url ?? "";
    if (!raw.startsWith("docker://")) {
      return invalidSource(
        src.registry.imageStream
          ? "spec.source.registry.imageStream is not supported (OpenShift only)"
          : `spec.source.registry.url "${raw}" must start with docker://`,
      );
    }
    const image = raw.slice("docker://".length);
    const registries = await d.registries();
    let allow: string[];
    try {
      allow = registryEgress(image, registries);
    } catch (e) {
      return invalidSource(`spec.source.registry.url: ${(e as Error).message}`);
    }
    const source: JobSource = { kind: "registry", image, registries };
    await writeCertRefs(d, ns, name, "spec.source.registry", src.registry, podDir, source);
    return { source, allow };
  }
  if (src.pvc) {
    const { clonePvcSource } = await import("./clone.js");
    return { source: await clonePvcSource(d, dv), allow: [] };
  }
  const kind = Object.keys(src)[0] ?? "(none)";
  return invalidSource(`spec.source.${kind} is not imported by the importer`);
}

/** CDI's secretRef (basic auth) and certConfigMap (CA bundle) of a source, into 0600 files the job names. */
async function writeCertRefs(
  d: WorkerShapeDeps,
  ns: string,
  dvName: string,
  field: string,
  refs: { secretRef?: string; certConfigMap?: string },
  podDir: string,
  source: { authFile?: string; caFile?: string },
): Promise<void> {
  const p = workerPaths(podDir);
  if (refs.secretRef) {
    const cred = await endpointCredentials(d.api, ns, refs.secretRef, `${field}.secretRef`, dvName);
    await writePrivate(p.auth, JSON.stringify(cred));
    source.authFile = p.auth;
  }
  if (refs.certConfigMap) {
    await writePrivate(p.ca, await caBundle(d.api, ns, refs.certConfigMap, `${field}.certConfigMap`, dvName));
    source.caFile = p.ca;
  }
}

export function importerShape(d: WorkerShapeDeps): PodShape {
  return {
    name: "cdi-importer",
    // (a clone target is an importer pod too: importSource resolves its source.pvc, handler/workers/clone.ts)
    match: (pod) => matchDvWorker(pod, "importer"),
    async command(ownerUid, podDir, pod) {
      const dv = await ownerDataVolume(d.api, pod, ownerUid);
      const ns = dv.metadata.namespace ?? "default";
      const name = dv.metadata.name ?? "";
      const target = await resolveTarget(d, ns, podClaim(pod, DATA_VOLUME_NAME, name), name);
      const { source, allow } = await importSource(d, dv, podDir);
      const p = workerPaths(podDir);
      const job: WorkerJob = {
        version: 1,
        owner: { namespace: ns, name, uid: ownerUid },
        target,
        source,
        progressFile: p.progress,
        terminationLog: p.terminationLog,
        scratchDir: p.scratch,
        ...(allow.length ? { egress: { socket: p.egressSocket, allow } } : {}),
      };
      const jobPath = await writeJob(podDir, job);
      const podUid = pod.metadata?.uid ?? "";
      await d.services.ensure(podUid, podDir, job);
      const argv = workerArgv(d, "importer", jobPath);
      // Its sources come through the egress (sockets the agent dials and hands over) or from files: no links to
      // make (a veth, the VM binding, DHCP) under the import. Only a clone from another node dials the source pod.
      const isolatedNetwork = !(source.kind === "pvc" && source.remote);
      return job.egress
        ? { argv, channel: d.services.egressChannel(podUid, job.egress.allow), isolatedNetwork }
        : { argv, isolatedNetwork };
    },
    // Linked only as a cross-node clone's target, which dials out itself: its IP, never the VM binding, whose
    // PREROUTING DNAT (to a guest that is not there) would take the clone stream's packets the moment it is made
    // under the live connection (the stream went silent or was reset, and the DV retried).
    plainNetwork: true,
    // A worker is ready while it runs (its readiness matters to no one yet).
    ready: async () => true,
    terminationMessagePath: (podDir) => workerPaths(podDir).terminationLog,
  };
}
