// Runs stock kubectl's protobuf-sending commands against the capture server and returns each command's body.

import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { startCaptureServer } from "./capture-server.js";

const run = promisify(execFile);

/** The commands whose bodies kubectl sends as protobuf, with the file name each body is kept under. */
export const protobufCommands: readonly { file: string; args: readonly string[]; path: string }[] = [
  { file: "namespace.pb", args: ["create", "namespace", "foo"], path: "/api/v1/namespaces" },
  {
    file: "configmap.pb",
    args: ["create", "configmap", "x", "--from-literal=a=b"],
    path: "/api/v1/namespaces/default/configmaps",
  },
  {
    file: "secret.pb",
    args: ["create", "secret", "generic", "s", "--from-literal=k=v"],
    path: "/api/v1/namespaces/default/secrets",
  },
  {
    file: "serviceaccount.pb",
    args: ["create", "serviceaccount", "sa"],
    path: "/api/v1/namespaces/default/serviceaccounts",
  },
  {
    file: "service.pb",
    args: ["create", "service", "nodeport", "np", "--tcp=5678:8080", "--node-port=30080"],
    path: "/api/v1/namespaces/default/services",
  },
  {
    file: "secret-docker-registry.pb",
    args: [
      "create",
      "secret",
      "docker-registry",
      "d",
      "--docker-server=r.example",
      "--docker-username=u",
      "--docker-password=p",
    ],
    path: "/api/v1/namespaces/default/secrets",
  },
  {
    file: "selfsubjectaccessreview.pb",
    args: ["auth", "can-i", "get", "vm"],
    path: "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
  },
];

export interface Captured {
  file: string;
  contentType: string | undefined;
  body: Buffer;
}

/** Runs every command in `protobufCommands` with `kubectl` (a path or a name on PATH). */
export async function captureKubectlBodies(kubectl = "kubectl"): Promise<Captured[]> {
  const server = await startCaptureServer();
  const dir = await mkdtemp(join(tmpdir(), "tsvirt-pbcap-"));
  try {
    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(
      kubeconfig,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{name: c, cluster: {server: " + JSON.stringify(server.url) + "}}]",
        "users: [{name: u, user: {}}]",
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]",
        "current-context: x",
        "",
      ].join("\n"),
    );
    const env = { ...process.env, KUBECONFIG: kubeconfig, KUBECACHEDIR: join(dir, "cache"), HOME: dir };
    const out: Captured[] = [];
    for (const cmd of protobufCommands) {
      const before = server.requests.length;
      await run(kubectl, [...cmd.args], { env, timeout: 60_000 });
      const req = server.requests.slice(before).find((r) => r.method === "POST" && r.url.split("?")[0] === cmd.path);
      if (!req) throw new Error(`kubectl ${cmd.args.join(" ")} sent no POST ${cmd.path}`);
      out.push({ file: cmd.file, contentType: req.contentType, body: req.body });
    }
    return out;
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// `node --import tsx apiserver/protobuf/kubectl-capture.ts` rewrites testdata/ from the kubectl on PATH.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { writeFile: write } = await import("node:fs/promises");
  for (const c of await captureKubectlBodies()) {
    await write(join(import.meta.dirname, "testdata", c.file), c.body);
    console.log(`${c.file}: ${c.body.length} bytes (${c.contentType})`);
  }
}
