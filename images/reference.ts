// Image references in the docker/containers shape: [registry[:port]/]repository[:tag][@sha256:hex].

export interface ImageReference {
  /** Registry host (with port), e.g. `docker.io`, `127.0.0.1:5000`. */
  registry: string;
  /** Repository path inside the registry, e.g. `library/busybox`, `kubevirt/cirros-container-disk-demo`. */
  repository: string;
  tag?: string;
  digest?: string;
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const REPO_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** Parses an image reference the way docker/containers do; `busybox` means `docker.io/library/busybox:latest`. */
export function parseReference(input: string): ImageReference {
  let rest = input.trim();
  if (rest === "" || rest.length > 1024 || /\s/.test(rest)) throw new Error(`invalid image reference "${input}"`);
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw new Error(`invalid image reference "${input}": bad digest`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw new Error(`invalid image reference "${input}": bad tag`);
  }
  const parts = rest.split("/");
  let registry = "docker.io";
  const first = parts[0] ?? "";
  if (
    parts.length > 1 &&
    (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("["))
  ) {
    registry = first;
    parts.shift();
  }
  if (registry === "index.docker.io") registry = "docker.io";
  if (registry === "docker.io" && parts.length === 1) parts.unshift("library");
  for (const p of parts) {
    if (!REPO_COMPONENT_RE.test(p))
      throw new Error(`invalid image reference "${input}": bad repository "${parts.join("/")}"`);
  }
  if (!/^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9a-fA-F:.]+\](?::\d{1,5})?$/.test(registry)) {
    throw new Error(`invalid image reference "${input}": bad registry "${registry}"`);
  }
  const ref: ImageReference = { registry, repository: parts.join("/") };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  if (tag === undefined && digest === undefined) ref.tag = "latest";
  return ref;
}

/** The canonical string of a reference: `registry/repo:tag@digest`. */
export function formatReference(ref: ImageReference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** True for hosts on loopback (127.0.0.0/8, localhost, [::1]): plain HTTP is allowed there. */
export function isLoopbackHost(hostPort: string): boolean {
  let host = hostPort;
  if (host.startsWith("[")) host = host.slice(1, host.indexOf("]"));
  else if (host.includes(":")) host = host.slice(0, host.lastIndexOf(":"));
  if (host === "localhost" || host === "::1") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
