// Who is calling: bearer tokens → userInfo, as kube-apiserver's token authenticators do. The administrator's token
// is the one of --token-file; each KubeVirt component has its own service-account token, kept in DATA/identities/
// (mode 0600). A request without a token is said explicitly: "admin" in single-user mode (loopback, no
// --token-file: the user's kubeconfig carries no token), "unauthorized" (401) whenever an admin token is set.
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Component,
  KUBEVIRT_NAMESPACE,
  SERVICE_ACCOUNTS,
  serviceAccountUser,
} from "../../api/kubevirt/v1/well-known.js";

export interface UserInfo {
  username: string;
  groups: string[];
}

export const ADMIN: UserInfo = { username: "system:admin", groups: ["system:masters", "system:authenticated"] };

export function serviceAccountInfo(sa: string, namespace = KUBEVIRT_NAMESPACE): UserInfo {
  return {
    username: serviceAccountUser(sa, namespace),
    groups: ["system:serviceaccounts", `system:serviceaccounts:${namespace}`, "system:authenticated"],
  };
}

export const COMPONENTS = Object.keys(SERVICE_ACCOUNTS) as Component[];

export interface Identity {
  component: Component;
  user: UserInfo;
  token: string;
}

const digest = (token: string): string => createHash("sha256").update(token).digest("hex");

/** What a request without a token is: the administrator (single-user mode) or a 401. */
export type AnonymousMode = "admin" | "unauthorized";

export interface AuthenticatorOptions {
  /** the administrator's token (--token-file) */
  adminToken?: string;
  identities: readonly Identity[];
  /** a request without a token; "admin" only when there is no admin token (else a token would protect nothing) */
  anonymous: AnonymousMode;
}

export class Authenticator {
  // keyed by a digest of the token: a lookup leaks nothing usable about a token through timing
  readonly #byDigest = new Map<string, UserInfo>();
  readonly anonymous: AnonymousMode;

  constructor(o: AuthenticatorOptions) {
    if (o.adminToken && o.anonymous === "admin")
      throw new Error("an administrator token is set: requests without a token cannot be the administrator");
    if (o.adminToken) this.#byDigest.set(digest(o.adminToken), ADMIN);
    for (const id of o.identities) this.#byDigest.set(digest(id.token), id.user);
    this.anonymous = o.anonymous;
  }

  /** The caller named by an Authorization header, or undefined (401): a token that is not ours never falls back. */
  authenticate(header: string | undefined): UserInfo | undefined {
    if (!header) return this.anonymous === "admin" ? ADMIN : undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return undefined;
    return this.#byDigest.get(digest(m[1] ?? ""));
  }
}

function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Fresh in-memory identities (a memory-only API server: tests take the tokens from ApiServer.identities). */
export function memoryIdentities(): Identity[] {
  return COMPONENTS.map((c) => ({ component: c, user: serviceAccountInfo(SERVICE_ACCOUNTS[c]), token: newToken() }));
}

export function identitiesDir(dataDir: string): string {
  return join(dataDir, "identities");
}

export function tokenPath(dataDir: string, c: Component): string {
  return join(identitiesDir(dataDir), `${SERVICE_ACCOUNTS[c]}.token`);
}

export function componentKubeconfigPath(dataDir: string, c: Component): string {
  return join(identitiesDir(dataDir), `${SERVICE_ACCOUNTS[c]}.kubeconfig`);
}

/** Reads each component's token from DATA/identities/, creating the missing ones (mode 0600; the dir 0700). */
export function loadOrCreateIdentities(dataDir: string): Identity[] {
  const dir = identitiesDir(dataDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return COMPONENTS.map((c) => {
    const path = tokenPath(dataDir, c);
    let token = existsSync(path) ? readFileSync(path, "utf8").trim() : "";
    if (!token) {
      token = newToken();
      writeFileSync(path, `${token}\n`, { mode: 0o600 });
    }
    chmodSync(path, 0o600);
    return { component: c, user: serviceAccountInfo(SERVICE_ACCOUNTS[c]), token };
  });
}
