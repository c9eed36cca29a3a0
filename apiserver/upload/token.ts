// Upload tokens (CDI's UploadTokenRequest): an HMAC-SHA256-signed claim naming the namespace, the DataVolume/PVC
// name, the operation and an expiry (5 minutes, as CDI's). The key lives in the API server's data dir (0600) so
// tokens survive an API server restart; the upload endpoint verifies each one before it streams a byte.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const UPLOAD_TOKEN_TTL_SECONDS = 300;

export interface UploadClaim {
  namespace: string;
  /** The DataVolume's (and its PVC's) name. */
  name: string;
  /** Only Upload is issued (CDI also has clone tokens). */
  operation: "Upload";
  /** Expiry, seconds since the epoch. */
  exp: number;
}

export type VerifyResult = { ok: true; claim: UploadClaim } | { ok: false; why: string };

const PREFIX = "tsvirt-upload.";

export class UploadTokens {
  readonly #key: Buffer;
  readonly #now: () => number;

  constructor(key: Buffer, now: () => number = Date.now) {
    if (key.length < 32) throw new Error("the upload token key must have at least 32 bytes");
    this.#key = key;
    this.#now = now;
  }

  #mac(payload: string): Buffer {
    return createHmac("sha256", this.#key).update(PREFIX).update(payload).digest();
  }

  sign(namespace: string, name: string, ttlSeconds = UPLOAD_TOKEN_TTL_SECONDS): string {
    const claim: UploadClaim = {
      namespace,
      name,
      operation: "Upload",
      exp: Math.floor(this.#now() / 1000) + ttlSeconds,
    };
    const payload = Buffer.from(JSON.stringify(claim)).toString("base64url");
    return `${payload}.${this.#mac(payload).toString("base64url")}`;
  }

  verify(token: string): VerifyResult {
    const m = /^([A-Za-z0-9_-]{1,2048})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return { ok: false, why: "malformed upload token" };
    const [, payload = "", sig = ""] = m;
    const want = this.#mac(payload);
    const got = Buffer.from(sig, "base64url");
    if (got.length !== want.length || !timingSafeEqual(got, want))
      return { ok: false, why: "upload token signature is invalid" };
    let c: Partial<UploadClaim>;
    try {
      c = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Partial<UploadClaim>;
    } catch {
      return { ok: false, why: "malformed upload token" };
    }
    if (typeof c.namespace !== "string" || typeof c.name !== "string" || typeof c.exp !== "number")
      return { ok: false, why: "malformed upload token" };
    if (c.operation !== "Upload") return { ok: false, why: "the token is not for an upload" };
    if (c.exp * 1000 <= this.#now()) return { ok: false, why: "upload token expired" };
    return { ok: true, claim: { namespace: c.namespace, name: c.name, operation: "Upload", exp: c.exp } };
  }
}

export function uploadKeyPath(dataDir: string): string {
  return join(dataDir, "upload-token.key");
}

/** The signing key from DATA/upload-token.key (mode 0600), made on first use; in memory without a data dir. */
export function loadOrCreateUploadKey(dataDir: string | undefined): Buffer {
  if (!dataDir) return randomBytes(32);
  mkdirSync(dataDir, { recursive: true });
  const path = uploadKeyPath(dataDir);
  if (!existsSync(path)) {
    // written aside and renamed: a crash never leaves a short key behind
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, randomBytes(32).toString("base64"), { mode: 0o600 });
    renameSync(tmp, path);
  }
  chmodSync(path, 0o600);
  const key = Buffer.from(readFileSync(path, "utf8").trim(), "base64");
  if (key.length < 32) throw new Error(`${path}: the upload token key is shorter than 32 bytes`);
  return key;
}
