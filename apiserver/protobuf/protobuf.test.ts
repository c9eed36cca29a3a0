import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { StatusError } from "../../lib/errors.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import { decodeProtobuf, isProtobufContentType } from "./index.js";
import { captureKubectlBodies, protobufCommands } from "./kubectl-capture.js";

const testdata = join(import.meta.dirname, "testdata");

/** What kubectl 1.32's bodies decode to: the objects `kubectl create ... -o json --dry-run=client` describes. */
const expected: Record<string, unknown> = {
  "namespace.pb": { apiVersion: "v1", kind: "Namespace", metadata: { name: "foo" }, spec: {}, status: {} },
  "configmap.pb": { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x" }, data: { a: "b" } },
  "secret.pb": {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "s" },
    data: { k: Buffer.from("v").toString("base64") },
  },
  "serviceaccount.pb": { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "sa" } },
  "service.pb": {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "np", labels: { app: "np" } },
    spec: {
      ports: [{ name: "5678-8080", protocol: "TCP", port: 5678, targetPort: 8080, nodePort: 30080 }],
      selector: { app: "np" },
      type: "NodePort",
    },
    status: { loadBalancer: {} },
  },
  "secret-docker-registry.pb": {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "d" },
    data: {
      ".dockerconfigjson": Buffer.from(
        JSON.stringify({
          auths: { "r.example": { username: "u", password: "p", auth: Buffer.from("u:p").toString("base64") } },
        }),
      ).toString("base64"),
    },
    type: "kubernetes.io/dockerconfigjson",
  },
  "selfsubjectaccessreview.pb": {
    apiVersion: "authorization.k8s.io/v1",
    kind: "SelfSubjectAccessReview",
    metadata: {},
    spec: {
      resourceAttributes: { namespace: "default", verb: "get", group: "kubevirt.io", resource: "virtualmachines" },
    },
    status: { allowed: false, denied: false },
  },
};

describe("protobuf bodies captured from kubectl (testdata/)", () => {
  for (const { file } of protobufCommands) {
    it(file, () => assert.deepEqual(decodeProtobuf(readFileSync(join(testdata, file))).object, expected[file]));
  }
});

describe("protobuf bodies from a live kubectl", () => {
  it("kubectl create ns/cm/secret/sa and auth can-i send bodies that decode as expected", {
    timeout: 300_000,
  }, async () => {
    requirePrereqs("kubectl");
    const got = await captureKubectlBodies();
    assert.equal(got.length, protobufCommands.length);
    for (const c of got) {
      assert.ok(isProtobufContentType(c.contentType), `${c.file}: ${c.contentType}`);
      assert.deepEqual(decodeProtobuf(c.body).object, expected[c.file], c.file);
    }
  });
});

// ---- a minimal encoder, to cover fields kubectl's imperative commands leave empty ----

type F = [number, string | Uint8Array | number | boolean | F[]];

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
}

function enc(fields: F[]): Uint8Array {
  const out: number[] = [];
  for (const [num, v] of fields) {
    if (typeof v === "number" || typeof v === "boolean") {
      out.push(...varint(BigInt(num << 3)), ...varint(BigInt(Number(v))));
      continue;
    }
    const body = typeof v === "string" ? new TextEncoder().encode(v) : v instanceof Uint8Array ? v : enc(v);
    out.push(...varint(BigInt((num << 3) | 2)), ...varint(BigInt(body.length)), ...body);
  }
  return Uint8Array.from(out);
}

function envelope(apiVersion: string, kind: string, raw: F[], extra: F[] = []): Uint8Array {
  const u = enc([
    [
      1,
      [
        [1, apiVersion],
        [2, kind],
      ],
    ],
    [2, enc(raw)],
    ...extra,
  ]);
  return Uint8Array.from([0x6b, 0x38, 0x73, 0x00, ...u]);
}

const entry = (k: string, v: string | Uint8Array): F => [
  0,
  [
    [1, k],
    [2, v],
  ],
];
const mapField = (num: number, entries: [string, string | Uint8Array][]): F[] =>
  entries.map(([k, v]) => [num, entry(k, v)[1]] as F);

const fullMeta: F = [
  1,
  [
    [2, "gen-"],
    [3, "kubevirt"],
    [7, 3],
    [8, [[1, 1764000000]]],
    ...mapField(11, [
      ["app", "web"],
      ["tier", "db"],
    ]),
    ...mapField(12, [["note", "x"]]),
    [
      13,
      [
        [1, "VirtualMachine"],
        [3, "vm1"],
        [4, "uid-1"],
        [5, "kubevirt.io/v1"],
        [6, true],
        [7, false],
      ],
    ],
    [14, "a/b"],
    [14, "c"],
  ],
];

describe("protobuf messages, field by field", () => {
  const cases: [string, Uint8Array, unknown][] = [
    [
      "policy/v1 Eviction with deleteOptions (grace period 0 kept, preconditions, dryRun)",
      envelope("policy/v1", "Eviction", [
        [
          1,
          [
            [1, "p1"],
            [3, "default"],
          ],
        ],
        [
          2,
          [
            [1, 0],
            [
              2,
              [
                [1, "uid-1"],
                [2, "7"],
              ],
            ],
            [4, "Background"],
            [5, "All"],
          ],
        ],
      ]),
      {
        apiVersion: "policy/v1",
        kind: "Eviction",
        metadata: { name: "p1", namespace: "default" },
        deleteOptions: {
          gracePeriodSeconds: 0,
          preconditions: { uid: "uid-1", resourceVersion: "7" },
          propagationPolicy: "Background",
          dryRun: ["All"],
        },
      },
    ],
    [
      "ConfigMap with full metadata, binaryData and immutable",
      envelope("v1", "ConfigMap", [
        fullMeta,
        ...mapField(2, [["a", "b"]]),
        ...mapField(3, [["bin", Uint8Array.from([0, 1, 2])]]),
        [4, true],
      ]),
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          generateName: "gen-",
          namespace: "kubevirt",
          generation: 3,
          creationTimestamp: "2025-11-24T16:00:00Z",
          labels: { app: "web", tier: "db" },
          annotations: { note: "x" },
          ownerReferences: [
            {
              kind: "VirtualMachine",
              name: "vm1",
              uid: "uid-1",
              apiVersion: "kubevirt.io/v1",
              controller: true,
              blockOwnerDeletion: false,
            },
          ],
          finalizers: ["a/b", "c"],
        },
        data: { a: "b" },
        binaryData: { bin: "AAEC" },
        immutable: true,
      },
    ],
    [
      "Secret with stringData, type and immutable=false",
      envelope("v1", "Secret", [
        [1, [[1, "s"]]],
        ...mapField(4, [["user", "root"]]),
        [3, "kubernetes.io/basic-auth"],
        [5, false],
      ]),
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "s" },
        stringData: { user: "root" },
        type: "kubernetes.io/basic-auth",
        immutable: false,
      },
    ],
    [
      "ServiceAccount with secrets, imagePullSecrets and automount",
      envelope("v1", "ServiceAccount", [
        [1, [[1, "sa"]]],
        [
          2,
          [
            [3, "tok"],
            [2, "ns1"],
          ],
        ],
        [3, [[1, "pull"]]],
        [4, false],
      ]),
      {
        apiVersion: "v1",
        kind: "ServiceAccount",
        metadata: { name: "sa" },
        secrets: [{ name: "tok", namespace: "ns1" }],
        imagePullSecrets: [{ name: "pull" }],
        automountServiceAccountToken: false,
      },
    ],
    [
      "Service with a named targetPort, external IPs and a LoadBalancer class",
      envelope("v1", "Service", [
        [1, [[1, "svc"]]],
        [
          2,
          [
            [
              1,
              [
                [1, "http"],
                [3, 80],
                [
                  4,
                  [
                    [1, 1],
                    [3, "web"],
                  ],
                ],
                [6, "kubernetes.io/h2c"],
              ],
            ],
            [5, "10.0.0.1"],
            [5, "10.0.0.2"],
            [4, "LoadBalancer"],
            [20, false],
            [21, "example.com/lb"],
          ],
        ],
      ]),
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "svc" },
        spec: {
          ports: [{ name: "http", port: 80, targetPort: "web", appProtocol: "kubernetes.io/h2c" }],
          externalIPs: ["10.0.0.1", "10.0.0.2"],
          type: "LoadBalancer",
          allocateLoadBalancerNodePorts: false,
          loadBalancerClass: "example.com/lb",
        },
      },
    ],
    [
      "SelfSubjectAccessReview for a non-resource URL",
      envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", [
        [
          2,
          [
            [
              2,
              [
                [1, "/healthz"],
                [2, "get"],
              ],
            ],
          ],
        ],
      ]),
      {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SelfSubjectAccessReview",
        metadata: {},
        spec: { nonResourceAttributes: { path: "/healthz", verb: "get" } },
      },
    ],
    [
      "Namespace with finalizers and unknown fields skipped",
      envelope("v1", "Namespace", [
        [
          1,
          [
            [1, "n"],
            [99, "ignored"],
          ],
        ],
        [2, [[1, "kubernetes"]]],
        [42, 7],
      ]),
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "n" }, spec: { finalizers: ["kubernetes"] } },
    ],
  ];
  for (const [name, body, want] of cases) it(name, () => assert.deepEqual(decodeProtobuf(body).object, want));
});

describe("protobuf errors are Status errors, never crashes", () => {
  const expectCode = (body: Uint8Array, code: number) =>
    assert.throws(
      () => decodeProtobuf(body),
      (e: unknown) => e instanceof StatusError && e.code === code,
    );
  it("a body without the k8s magic is a 400", () => expectCode(new TextEncoder().encode('{"kind":"Namespace"}'), 400));
  it("a truncated body is a 400", () => {
    const good = readFileSync(join(testdata, "configmap.pb"));
    expectCode(good.subarray(0, good.length - 5), 400);
  });
  it("an unknown kind is a 415", () => expectCode(envelope("v1", "Pod", [[1, [[1, "p"]]]]), 415));
  it("a compressed raw body is a 415", () => expectCode(envelope("v1", "ConfigMap", [], [[3, "gzip"]]), 415));
  it("2,000 mutated bodies yield a decoded object or a 400/415, nothing else", () => {
    const seeds = protobufCommands.map(({ file }) => readFileSync(join(testdata, file)));
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from(seeds[rand(seeds.length)]!);
      const flips = 1 + rand(4);
      for (let j = 0; j < flips; j++) b[4 + rand(b.length - 4)] = rand(256);
      const cut = rand(3) === 0 ? b.subarray(0, 4 + rand(b.length - 3)) : b;
      try {
        const d = decodeProtobuf(cut);
        assert.equal(typeof d.object, "object");
      } catch (e) {
        assert.ok(e instanceof StatusError && (e.code === 400 || e.code === 415), String(e));
      }
    }
  });
  it("recognises the content type", () => {
    assert.equal(isProtobufContentType("application/vnd.kubernetes.protobuf"), true);
    assert.equal(isProtobufContentType("application/vnd.kubernetes.protobuf; charset=utf-8"), true);
    assert.equal(isProtobufContentType("application/json"), false);
  });
});
