// `tsvirt image verify REF`: does every registry the list names for REF (mirrors and the primary) serve the same
// manifest digest? Read-only (manifest GETs), one registry at a time; a registry that fails is reported, not skipped.
import type { Credentials } from "./client.js";
import { RegistryClient } from "./client.js";
import { toRegistryError } from "./errors.js";
import type { TlsOptions } from "./http.js";
import { formatReference, parseReference } from "./reference.js";
import { emptyRegistriesConfig, type RegistriesConfig, resolveSources } from "./registries-conf.js";

export interface SourceDigest {
  /** `registry/repository` asked. */
  source: string;
  digest?: string;
  error?: { kind: string; message: string };
}

export interface VerifyResult {
  ref: string;
  /** Every registry answered, all with the same digest (and the ref's own digest when it names one). */
  consistent: boolean;
  /** The digest all agree on, when they do. */
  digest?: string;
  sources: SourceDigest[];
}

/** The verdict over what each registry answered. Pure. */
export function summarizeVerify(ref: string, sources: SourceDigest[], wanted?: string): VerifyResult {
  const digests = new Set(sources.map((s) => s.digest));
  const only = digests.size === 1 ? [...digests][0] : undefined;
  const consistent =
    sources.length > 0 && sources.every((s) => s.digest) && only !== undefined && (!wanted || only === wanted);
  return { ref, consistent, ...(consistent && only ? { digest: only } : {}), sources };
}

export async function verifyImage(
  ref: string,
  opts: { registries?: RegistriesConfig; credentials?: Credentials; tls?: TlsOptions; signal?: AbortSignal } = {},
): Promise<VerifyResult> {
  const parsed = parseReference(ref);
  const sources = resolveSources(parsed, opts.registries ?? emptyRegistriesConfig());
  const out: SourceDigest[] = [];
  for (const src of sources) {
    const client = new RegistryClient({
      registry: src.registry,
      insecure: src.insecure,
      credential: opts.credentials?.[src.registry],
      ...(opts.tls ? { tls: opts.tls } : {}),
    });
    const source = `${src.registry}/${src.repository}`;
    try {
      const m = await client.getManifest(src.repository, parsed.digest ?? parsed.tag ?? "latest", opts.signal);
      out.push({ source, digest: m.digest });
    } catch (e) {
      const re = toRegistryError(e);
      out.push({ source, error: { kind: re.kind, message: re.message } });
    } finally {
      client.close();
    }
  }
  return summarizeVerify(formatReference(parsed), out, parsed.digest);
}
