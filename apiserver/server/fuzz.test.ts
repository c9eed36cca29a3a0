// Fuzz: ≥ 10,000 random and mutated requests (paths, query strings, methods, content types, bodies). The server
// never answers 500, never crashes or hangs, every error is a Status with a matching code, and good requests in
// the same run keep working.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { nullLogger } from "../../lib/log.js";
import { type ApiServer, startApiServer } from "../index.js";

const N = Number(process.env.FUZZ_REQUESTS ?? 10_000);
let api: ApiServer;
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

// PRNG (mulberry32): CI runs a fixed seed so its result does not depend on the day; FUZZ_SEED=N replays a seed,
// FUZZ_SEED=random explores (seed 537903 found non-ASCII Warning headers answered with 500).
const seedEnv = process.env.FUZZ_SEED ?? "537903";
const seed = seedEnv === "random" ? Date.now() % 1_000_000 : Number(seedEnv);
process.stderr.write(`fuzz seed ${seed}\n`);
let s = seed >>> 0;
function rnd(): number {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function pick<T>(a: readonly T[]): T {
  return a[Math.floor(rnd() * a.length)] as T;
}
function int(n: number): number {
  return Math.floor(rnd() * n);
}

const goodPaths = [
  "/api/v1/namespaces/default/pods",
  "/api/v1/namespaces/default/pods/p1",
  "/api/v1/namespaces/default/pods/p1/binding",
  "/api/v1/namespaces/default/pods/p1/eviction",
  "/api/v1/namespaces/default/pods/p1/log",
  "/api/v1/namespaces/default/pods/p1/status",
  "/api/v1/namespaces/default/configmaps",
  "/api/v1/namespaces/default/configmaps/c1",
  "/api/v1/namespaces",
  "/api/v1/namespaces/fz",
  "/api/v1/namespaces/fz/finalize",
  "/api/v1/nodes/n1",
  "/api/v1/nodes/n1/status",
  "/api/v1/namespaces/default/events",
  "/apis/kubevirt.io/v1/namespaces/default/virtualmachines",
  "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1",
  "/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1/status",
  "/apis/kubevirt.io/v1alpha3/namespaces/default/virtualmachines/vm1",
  "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances/vmi1",
  "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancereplicasets/rs1/scale",
  "/apis/kubevirt.io/v1/virtualmachines",
  "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
  "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
  "/apis/coordination.k8s.io/v1/namespaces/default/leases/l1",
  "/api",
  "/apis",
  "/api/v1",
  "/apis/kubevirt.io",
  "/openapi/v3",
  "/openapi/v3/apis/kubevirt.io/v1",
  "/version",
  "/metrics",
];
const queries = [
  "watch=true",
  "watch=1",
  "resourceVersion=0",
  "resourceVersion=abc",
  "resourceVersion=1",
  "resourceVersion=99999999999999999999",
  "timeoutSeconds=1",
  "timeoutSeconds=-1",
  "limit=2",
  "limit=-5",
  "continue=abc",
  "continue=eyJydiI6IjEiLCJzdGFydCI6MX0",
  "labelSelector=a%3Db",
  "labelSelector=a%20in%20(",
  "labelSelector=!!",
  "fieldSelector=metadata.name%3Dx",
  "fieldSelector=spec.foo%3D1",
  "fieldSelector=%3D%3D",
  "dryRun=All",
  "dryRun=Nope",
  "fieldValidation=Strict",
  "fieldValidation=Bogus",
  "fieldManager=fz",
  "force=true",
  "force=maybe",
  "propagationPolicy=Foreground",
  "propagationPolicy=Nope",
  "gracePeriodSeconds=0",
  "gracePeriodSeconds=x",
  "allowWatchBookmarks=true",
  "sendInitialEvents=true",
  "container=compute",
  "tailLines=x",
  "hash=abc",
  "includeObject=Object",
  "%zz=%zz",
];
const contentTypes = [
  "application/json",
  "application/merge-patch+json",
  "application/json-patch+json",
  "application/strategic-merge-patch+json",
  "application/apply-patch+yaml",
  "application/yaml",
  "application/vnd.kubernetes.protobuf",
  "text/plain",
  "",
  "application/json; charset=utf-8",
  "multipart/form-data; boundary=x",
];
const accepts = [
  "application/json",
  "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
  "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
  "application/vnd.kubernetes.protobuf",
  "*/*",
  "",
];

/** Percent-encodes every UTF-8 byte (lone surrogates included, which encodeURIComponent rejects). */
function enc(v: string): string {
  return [...Buffer.from(v, "utf8")].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
}

function randomString(): string {
  const alphabets = ["abcxyz-.", "ABC/\\%$#@!~`'\"", "\u0000\u0001\u00ff\u2028\ud83d\ude00", "0123456789", " \t\r"];
  const al = pick(alphabets);
  let out = "";
  const n = int(pick([3, 10, 70, 300]));
  for (let i = 0; i < n; i++) out += al[int(al.length)];
  return out;
}

function randomValue(depth: number): unknown {
  const k = int(depth > 3 ? 6 : 9);
  switch (k) {
    case 0:
      return null;
    case 1:
      return rnd() < 0.5;
    case 2:
      return pick([0, -1, 1.5, 1e308, -1e-308, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER]);
    case 3:
    case 4:
      return randomString();
    case 5:
      return pick(["", "default", "Always", "Halted", "64Mi", "v1", "kubevirt.io/v1", "__proto__", "constructor"]);
    case 6:
      return Array.from({ length: int(4) }, () => randomValue(depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < int(5); i++)
        o[pick(["metadata", "spec", "status", "name", "labels", "__proto__", randomString()])] = randomValue(depth + 1);
      return o;
    }
  }
}

function goodObject(): unknown {
  return pick([
    {
      apiVersion: "kubevirt.io/v1",
      kind: "VirtualMachine",
      metadata: { name: "vm1", labels: { a: "b" }, finalizers: ["x/y"] },
      spec: {
        runStrategy: "Halted",
        template: { spec: { domain: { devices: { disks: [{ name: "d", disk: { bus: "virtio" } }] } } } },
      },
    },
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c1" }, data: { a: "1" } },
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "p1" },
      spec: { containers: [{ name: "compute", image: "x" }] },
    },
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "fz" } },
    { apiVersion: "v1", kind: "Node", metadata: { name: "n1" } },
    { kind: "DeleteOptions", propagationPolicy: "Foreground", preconditions: { uid: "x" } },
    [{ op: "add", path: "/metadata/labels/x", value: "y" }],
    [
      { op: "test", path: "/spec", value: 1 },
      { op: "move", from: "/a", path: "/b" },
    ],
    { target: { name: "n1" } },
    { metadata: { ownerReferences: [{ uid: "u", name: "n", kind: "K", apiVersion: "v1" }] } },
  ]);
}

function mutate(v: unknown, depth = 0): unknown {
  if (depth > 6 || rnd() < 0.15) return randomValue(depth);
  if (Array.isArray(v)) return v.map((x) => (rnd() < 0.3 ? mutate(x, depth + 1) : x));
  if (v && typeof v === "object") {
    const o: Record<string, unknown> = { ...(v as Record<string, unknown>) };
    for (const key of Object.keys(o)) {
      const r = rnd();
      if (r < 0.15) delete o[key];
      else if (r < 0.5) o[key] = mutate(o[key], depth + 1);
    }
    if (rnd() < 0.2) o[randomString()] = randomValue(depth + 1);
    return o;
  }
  return rnd() < 0.5 ? randomValue(depth) : v;
}

function body(): Buffer | undefined {
  const k = int(10);
  if (k === 0) return undefined;
  if (k === 1) return Buffer.from(randomString());
  if (k === 2) return Buffer.from(JSON.stringify(goodObject()).slice(0, int(80)));
  if (k === 3)
    return Buffer.concat([Buffer.from("k8s\0"), Buffer.from(Array.from({ length: int(200) }, () => int(256)))]);
  if (k === 4) return Buffer.from("[".repeat(int(2) ? 50_000 : 500) + "]".repeat(int(2) ? 50_000 : 500));
  if (k === 5) return Buffer.from(`a: &a [1]\nb: *a\nc: {d: [${"*a,".repeat(50)}*a]}`);
  if (k === 6) return Buffer.from(JSON.stringify(randomValue(0)));
  return Buffer.from(JSON.stringify(mutate(goodObject())));
}

function path(): string {
  let p = pick(goodPaths);
  const r = rnd();
  if (r < 0.15) {
    const segs = p.split("/");
    segs[1 + int(segs.length - 1)] = pick([enc(randomString()), "..", "", "%", "%2F", "%00", "namespaces", "%E0%A4%A"]);
    p = segs.join("/");
  } else if (r < 0.2) p += `/${enc(randomString())}`;
  else if (r < 0.25) p = `/${enc(randomString())}`;
  const qs: string[] = [];
  for (let i = 0; i < int(4); i++)
    qs.push(rnd() < 0.9 ? pick(queries) : `${enc(randomString())}=${enc(randomString())}`);
  // every watch is bounded in time
  if (qs.some((q) => q.startsWith("watch"))) qs.push("timeoutSeconds=1");
  return qs.length ? `${p}?${qs.join("&")}` : p;
}

interface Result {
  status: number;
  body: string;
  ct: string;
}

function send(method: string, p: string, headers: Record<string, string>, b: Buffer | undefined): Promise<Result> {
  return new Promise((resolve, reject) => {
    const url = new URL(api.url);
    const req = http.request(
      { host: url.hostname, port: url.port, path: p, method, headers, agent, timeout: 15_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString("utf8"),
            ct: String(res.headers["content-type"] ?? ""),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`request hung: ${method} ${p}`)));
    req.on("error", reject);
    // explicit framing: Node's client sends a GET body with neither Content-Length nor chunked encoding
    if (b) {
      req.setHeader("content-length", b.length);
      req.end(b);
    } else req.end();
  });
}

/** Good requests, in a namespace the random requests never name (a fuzzed deletecollection could empty "default"). */
async function goodSuite(tag: string): Promise<void> {
  const ns = await send(
    "POST",
    "/api/v1/namespaces",
    { "content-type": "application/json" },
    Buffer.from('{"metadata":{"name":"fuzz-good"}}'),
  );
  assert.ok(ns.status === 201 || ns.status === 409, ns.body);
  const name = `good-${tag}`;
  const obj = {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachine",
    metadata: { name },
    spec: { runStrategy: "Halted", template: { spec: { domain: { devices: {} } } } },
  };
  const c = await send(
    "POST",
    "/apis/kubevirt.io/v1/namespaces/fuzz-good/virtualmachines",
    { "content-type": "application/json" },
    Buffer.from(JSON.stringify(obj)),
  );
  assert.equal(c.status, 201, c.body);
  const g = await send("GET", `/apis/kubevirt.io/v1/namespaces/fuzz-good/virtualmachines/${name}`, {}, undefined);
  assert.equal(g.status, 200);
  const p = await send(
    "PATCH",
    `/apis/kubevirt.io/v1/namespaces/fuzz-good/virtualmachines/${name}`,
    { "content-type": "application/merge-patch+json" },
    Buffer.from('{"metadata":{"labels":{"ok":"1"}}}'),
  );
  assert.equal(p.status, 200);
  const l = await send(
    "GET",
    "/apis/kubevirt.io/v1/namespaces/fuzz-good/virtualmachines?labelSelector=ok%3D1",
    {},
    undefined,
  );
  assert.ok((JSON.parse(l.body) as { items: unknown[] }).items.length >= 1);
  const d = await send("DELETE", `/apis/kubevirt.io/v1/namespaces/fuzz-good/virtualmachines/${name}`, {}, undefined);
  assert.equal(d.status, 200);
}

before(async () => {
  api = await startApiServer({
    memory: true,
    logger: nullLogger,
    maxWatchSeconds: 1,
    resyncMs: 500,
    maxBodyBytes: 512 * 1024,
  });
});
after(async () => {
  agent.destroy();
  await api.close();
});

test(`fuzz: ${N} random and mutated requests never get a 500, hang or crash; errors are Status objects`, {
  timeout: 600_000,
}, async () => {
  await goodSuite("before");
  const methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"];
  let done = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (done < N) {
      done++;
      const i = done;
      const method = pick(methods);
      const p = path();
      const headers: Record<string, string> = {};
      const ct = pick(contentTypes);
      if (ct) headers["content-type"] = ct;
      const acc = pick(accepts);
      if (acc) headers.accept = acc;
      if (rnd() < 0.05) headers["user-agent"] = randomString().replace(/[^\x20-\x7e]/g, "x");
      // (a HEAD request carries no body: its bytes would be parsed as the next request on the connection)
      const b = method === "HEAD" ? undefined : method === "GET" ? (rnd() < 0.1 ? body() : undefined) : body();
      let r: Result;
      try {
        r = await send(method, p, headers, b);
      } catch (e) {
        failures.push(`#${i} ${method} ${p}: ${(e as Error).message}`);
        continue;
      }
      if (r.status >= 500 && !(r.status === 503 && p.includes("/log"))) {
        failures.push(`#${i} ${method} ${p} [${ct}] → ${r.status} ${r.body.slice(0, 300)}`);
      } else if (r.status >= 400 && method !== "HEAD") {
        let st: { kind?: string; code?: number } = {};
        try {
          st = JSON.parse(r.body) as typeof st;
        } catch {
          // not JSON
        }
        if (st.kind !== "Status" || st.code !== r.status)
          failures.push(`#${i} ${method} ${p} → ${r.status} not a Status: ${r.body.slice(0, 200)}`);
      }
      if (i === Math.floor(N / 2)) await goodSuite("middle");
      if (failures.length > 20) return;
    }
  };
  await Promise.all(Array.from({ length: 8 }, () => worker()));
  assert.deepEqual(failures, [], `seed ${seed}`);
  await goodSuite("after");
  assert.equal((await send("GET", "/readyz", {}, undefined)).status, 200);
});
