// Connection settings the way kubectl finds them: --kubeconfig, then $KUBECONFIG (first existing file of the list),
// then ~/.kube/config; the current context names the cluster, the user and the default namespace. In a pod the
// service-account token and CA are used instead (cluster mode).

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";

const load = createRequire(import.meta.url);

/**
 * A kubeconfig's document: JSON (what tsvirt writes; JSON is YAML, kubectl reads it) parsed at once, the YAML parser
 * loaded only for YAML (its ~70 modules were a quarter of a virtctl verb's start-up).
 */
function parseDocument(text: string): unknown {
  if (text.trimStart().startsWith("{")) {
    try {
      return JSON.parse(text);
    } catch {
      // YAML's flow style: the YAML parser reads it
    }
  }
  return (load("yaml") as typeof import("yaml")).parse(text);
}

export interface ClientConfig {
  /** The API server's base URL, e.g. http://127.0.0.1:6443 (no trailing slash). */
  server: string;
  namespace: string;
  token?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecureSkipTLSVerify?: boolean;
  userAgent?: string;
}

interface KubeconfigFile {
  "current-context"?: string;
  clusters?: { name: string; cluster: Record<string, unknown> }[];
  contexts?: { name: string; context: { cluster?: string; user?: string; namespace?: string } }[];
  users?: { name: string; user?: Record<string, unknown> }[];
}

export interface LoadOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  server?: string;
  env?: NodeJS.ProcessEnv;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Parses kubeconfig text; `baseDir` resolves relative certificate paths. */
export function parseKubeconfig(text: string, baseDir: string, contextName?: string): ClientConfig {
  const kc = (parseDocument(text) ?? {}) as KubeconfigFile;
  const ctxName = contextName ?? kc["current-context"];
  const ctx = kc.contexts?.find((c) => c.name === ctxName)?.context ?? kc.contexts?.[0]?.context;
  if (!ctx) throw new Error(`kubeconfig: context ${JSON.stringify(ctxName ?? "")} not found`);
  const cluster = kc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster || typeof cluster.server !== "string") {
    throw new Error(`kubeconfig: cluster ${JSON.stringify(ctx.cluster ?? "")} has no server`);
  }
  const user = kc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  const file = (v: unknown): Buffer | undefined =>
    typeof v === "string" && v ? readFileSync(isAbsolute(v) ? v : join(baseDir, v)) : undefined;
  const data = (v: unknown): Buffer | undefined => (typeof v === "string" && v ? Buffer.from(v, "base64") : undefined);
  const cfg: ClientConfig = { server: cluster.server.replace(/\/+$/, ""), namespace: ctx.namespace || "default" };
  const ca = data(cluster["certificate-authority-data"]) ?? file(cluster["certificate-authority"]);
  if (ca) cfg.ca = ca;
  if (cluster["insecure-skip-tls-verify"] === true) cfg.insecureSkipTLSVerify = true;
  const token =
    typeof user.token === "string" ? user.token : file(user.tokenFile)?.toString("utf8").trim() || undefined;
  if (token) cfg.token = token;
  const cert = data(user["client-certificate-data"]) ?? file(user["client-certificate"]);
  const key = data(user["client-key-data"]) ?? file(user["client-key"]);
  if (cert) cfg.cert = cert;
  if (key) cfg.key = key;
  return cfg;
}

/** In-cluster configuration from the service account, or undefined outside a pod. */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir = SA_DIR): ClientConfig | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !existsSync(join(dir, "token"))) return undefined;
  const h = host.includes(":") ? `[${host}]` : host;
  const cfg: ClientConfig = {
    server: `https://${h}:${port}`,
    token: readFileSync(join(dir, "token"), "utf8").trim(),
    namespace: existsSync(join(dir, "namespace")) ? readFileSync(join(dir, "namespace"), "utf8").trim() : "default",
  };
  if (existsSync(join(dir, "ca.crt"))) cfg.ca = readFileSync(join(dir, "ca.crt"));
  return cfg;
}

/** Finds and loads the configuration like kubectl; options override the file's namespace and server. */
export function loadConfig(opts: LoadOptions = {}): ClientConfig {
  const env = opts.env ?? process.env;
  let cfg: ClientConfig | undefined;
  const candidates: string[] = [];
  if (opts.kubeconfig) candidates.push(opts.kubeconfig);
  else if (env.KUBECONFIG) candidates.push(...env.KUBECONFIG.split(delimiter).filter(Boolean));
  else candidates.push(join(env.HOME ?? homedir(), ".kube", "config"));
  const path = opts.kubeconfig ?? candidates.find((p) => existsSync(p));
  if (path) cfg = parseKubeconfig(readFileSync(path, "utf8"), dirname(path), opts.context);
  else cfg = inClusterConfig(env);
  if (!cfg) {
    if (!opts.server) throw new Error("no kubeconfig found: set KUBECONFIG or pass --kubeconfig");
    cfg = { server: opts.server, namespace: "default" };
  }
  if (opts.server) cfg.server = opts.server.replace(/\/+$/, "");
  if (opts.namespace) cfg.namespace = opts.namespace;
  return cfg;
}
