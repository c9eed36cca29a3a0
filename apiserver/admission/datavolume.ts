// CDI's DataVolume admission (datavolume-validate), cut to what tsvirt acts on: one source of the sources tsvirt
// implements (blank, registry, http, pvc, upload), one of pvc/storage with a size, well-formed URLs, and a spec that
// never changes after create. Fields nothing acts on are refused (or answered with a Warning when harmless), never
// accepted and ignored. Pure: causes and warnings from the object. (Update immutability: kubevirt.ts's plugin.)
import { parseQuantity } from "../../api/index.js";
import type { StatusCause } from "../../lib/errors.js";
import { field, isObject, type Rec, rec } from "../../lib/json.js";

const UNSUPPORTED_SOURCES = ["s3", "gcs", "imageio", "vddk", "snapshot"] as const;
const CHECKSUM = /^(md5:[0-9a-fA-F]{32}|sha1:[0-9a-fA-F]{40}|sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$/;

function invalid(f: string, message: string): StatusCause {
  return { type: "FieldValueInvalid", field: f, message: `${f}: ${message}` };
}
function required(f: string, message = "Required value"): StatusCause {
  return { type: "FieldValueRequired", field: f, message: `${f}: ${message}` };
}
function unsupported(f: string, message: string): StatusCause {
  return { type: "FieldValueNotSupported", field: f, message: `${f}: ${message}` };
}

const set = (v: unknown) => v !== undefined && v !== null;

export interface DvValidation {
  causes: StatusCause[];
  warnings: string[];
}

/** A DataVolume spec (or a VM's dataVolumeTemplates[i].spec at `path`) as tsvirt can act on it. */
export function validateDataVolumeSpec(specIn: unknown, path = "spec"): DvValidation {
  const causes: StatusCause[] = [];
  const warnings: string[] = [];
  if (!isObject(specIn)) return { causes: [required(path)], warnings };
  const spec = specIn;

  // ---- source / sourceRef ----
  if (set(spec.sourceRef)) {
    causes.push(
      unsupported(`${path}.sourceRef`, "tsvirt does not support DataSource references (sourceRef); use spec.source"),
    );
  } else if (!set(spec.source)) {
    causes.push(required(`${path}.source`, "Data volume should have either Source or SourceRef"));
  }
  const source = rec(spec.source);
  const kinds = Object.keys(source).filter((k) => set(source[k]));
  for (const k of kinds) {
    if ((UNSUPPORTED_SOURCES as readonly string[]).includes(k)) {
      causes.push(unsupported(`${path}.source.${k}`, `tsvirt does not support the ${k} source`));
    }
  }
  if (set(spec.source) && kinds.length === 0) causes.push(required(`${path}.source`, "Missing Data volume source"));
  if (kinds.length > 1) {
    causes.push(invalid(`${path}.source`, `Multiple Data volume sources (${kinds.join(", ")}): set exactly one`));
  }
  if (set(source.registry)) registryCauses(rec(source.registry), `${path}.source.registry`, causes);
  if (set(source.http)) httpCauses(rec(source.http), `${path}.source.http`, causes);
  if (set(source.pvc)) {
    const p = rec(source.pvc);
    if (!p.name) causes.push(required(`${path}.source.pvc.name`));
    if (!p.namespace) causes.push(required(`${path}.source.pvc.namespace`));
  }
  const isClone = set(source.pvc);

  // ---- target: pvc or storage, with a size ----
  const hasPvc = set(spec.pvc);
  const hasStorage = set(spec.storage);
  if (hasPvc && hasStorage) {
    causes.push(invalid(`${path}.pvc`, "Data volume has both pvc and storage: set exactly one"));
  } else if (!hasPvc && !hasStorage) {
    causes.push(required(`${path}.pvc`, "Missing Data volume PVC (spec.pvc or spec.storage)"));
  }
  const target = hasPvc ? "pvc" : "storage";
  if (hasPvc || hasStorage) {
    const t = rec(spec[target]);
    const size = field(t, "resources.requests.storage");
    const sizePath = `${path}.${target}.resources.requests.storage`;
    if (!set(size)) {
      // A storage clone takes the source's size; everything else needs one.
      if (!(target === "storage" && isClone)) causes.push(required(sizePath, "PVC size is missing"));
    } else {
      const n = typeof size === "string" || typeof size === "number" ? parseQuantity(size) : undefined;
      if (n === undefined || Number.isNaN(n)) causes.push(invalid(sizePath, `"${String(size)}" is not a quantity`));
      else if (n <= 0) causes.push(invalid(sizePath, "PVC size can't be equal or less than zero"));
    }
    for (const k of ["dataSource", "dataSourceRef"]) {
      if (set(t[k])) {
        causes.push(
          unsupported(`${path}.${target}.${k}`, "tsvirt does not support volume populators; use spec.source"),
        );
      }
    }
    if (set(t.selector)) {
      causes.push(
        unsupported(`${path}.${target}.selector`, "tsvirt's volume binding does not select volumes by label"),
      );
    }
  }

  // ---- fields nothing acts on ----
  if (set(spec.checkpoints) || set(spec.finalCheckpoint)) {
    const f = set(spec.checkpoints) ? "checkpoints" : "finalCheckpoint";
    causes.push(unsupported(`${path}.${f}`, "tsvirt does not support multi-stage (checkpoint) imports"));
  }
  if (set(spec.contentType) && spec.contentType !== "kubevirt") {
    causes.push(
      unsupported(
        `${path}.contentType`,
        `tsvirt imports disk images only (kubevirt), not "${String(spec.contentType)}"`,
      ),
    );
  }
  if (spec.preallocation === true) {
    warnings.push(`${path}.preallocation: not done by tsvirt; tsvirt-local volumes stay sparse`);
  }
  if (set(spec.priorityClassName)) {
    warnings.push(`${path}.priorityClassName: worker pods have no priority in tsvirt; the field is not acted on`);
  }
  return { causes, warnings };
}

function registryCauses(r: Rec, p: string, causes: StatusCause[]): void {
  if (set(r.imageStream))
    causes.push(unsupported(`${p}.imageStream`, "tsvirt does not support image streams (OpenShift)"));
  if (set(r.pullMethod) && r.pullMethod !== "pod") {
    causes.push(
      unsupported(`${p}.pullMethod`, `tsvirt pulls in the importer pod ("pod"), not "${String(r.pullMethod)}"`),
    );
  }
  const arch = field(r.platform, "architecture");
  if (set(arch) && arch !== "amd64") {
    causes.push(unsupported(`${p}.platform.architecture`, `tsvirt imports amd64 images only, not "${String(arch)}"`));
  }
  const url = r.url;
  if (!set(url) || url === "") {
    if (!set(r.imageStream)) causes.push(required(`${p}.url`));
    return;
  }
  if (typeof url !== "string" || !url.startsWith("docker://") || url.length <= "docker://".length) {
    causes.push(invalid(`${p}.url`, `"${String(url)}" must be docker://<registry>/<image>[:tag|@digest]`));
  }
}

function httpCauses(h: Rec, p: string, causes: StatusCause[]): void {
  const url = h.url;
  if (!set(url) || url === "") {
    causes.push(required(`${p}.url`));
  } else {
    let u: URL | undefined;
    try {
      u = new URL(String(url));
    } catch {
      causes.push(invalid(`${p}.url`, `"${String(url)}" is not a URL`));
    }
    if (u && u.protocol !== "http:" && u.protocol !== "https:") {
      causes.push(invalid(`${p}.url`, `scheme ${u.protocol.replace(/:$/, "")} is not http or https`));
    }
    if (u && (u.username || u.password)) {
      causes.push(invalid(`${p}.url`, "credentials do not go in the URL: use secretRef"));
    }
  }
  for (const k of ["extraHeaders", "secretExtraHeaders"]) {
    const v = h[k];
    if (Array.isArray(v) ? v.length > 0 : set(v)) {
      causes.push(unsupported(`${p}.${k}`, "tsvirt does not send extra HTTP headers"));
    }
  }
  if (set(h.checksum) && !CHECKSUM.test(String(h.checksum))) {
    causes.push(invalid(`${p}.checksum`, `"${String(h.checksum)}" is not <md5|sha1|sha256|sha512>:<hex digest>`));
  }
}

/** CDIConfig: the singleton `config`; of its spec, tsvirt acts on uploadProxyURLOverride only. */
export function cdiConfigWarnings(obj: unknown): string[] {
  const o = rec(obj);
  const warnings: string[] = [];
  if (field(o.metadata, "name") !== "config")
    warnings.push('only the CDIConfig named "config" is read; this one is ignored');
  for (const k of Object.keys(rec(o.spec))) {
    if (k !== "uploadProxyURLOverride" && set(rec(o.spec)[k])) {
      warnings.push(`spec.${k}: accepted but not acted on by tsvirt`);
    }
  }
  return warnings;
}

/**
 * A clone from another namespace (CDI's rule, asked of the API's own authorizer through `may`): the requester must be
 * allowed to `create` `datavolumes/source` in the source's namespace. Same namespace: nothing more to ask.
 */
export function crossNamespaceCloneCauses(
  specIn: unknown,
  namespace: string,
  may: (attrs: { verb: string; group: string; resource: string; namespace: string }) => boolean,
): StatusCause[] {
  const src = field(field(specIn, "source"), "pvc");
  const from = field(src, "namespace");
  if (typeof from !== "string" || from === "" || from === namespace) return [];
  if (may({ verb: "create", group: "cdi.kubevirt.io", resource: "datavolumes/source", namespace: from })) return [];
  return [
    {
      type: "FieldValueForbidden",
      field: "spec.source.pvc.namespace",
      message: `spec.source.pvc.namespace: cloning from namespace ${from} needs the right to create datavolumes/source there, which the requester lacks`,
    },
  ];
}
