// A tiny HTTP server on 127.0.0.1 that answers just enough (version, discovery, 201 on POST) for stock kubectl's
// imperative `create` and `auth can-i` to send their protobuf request bodies, and records every request. Used by
// the protobuf tests to capture real bodies (and to regenerate testdata/: `node --import tsx apiserver/protobuf/kubectl-capture.ts`).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface CapturedRequest {
  method: string;
  url: string;
  contentType: string | undefined;
  body: Buffer;
}

export interface CaptureServer {
  url: string;
  requests: CapturedRequest[];
  close(): Promise<void>;
}

const resourceList = (groupVersion: string, resources: unknown[]) => ({
  kind: "APIResourceList",
  apiVersion: "v1",
  groupVersion,
  resources,
});

const res = (name: string, kind: string, namespaced: boolean, verbs: string[], shortNames?: string[]) => ({
  name,
  singularName: "",
  namespaced,
  kind,
  verbs,
  ...(shortNames ? { shortNames } : {}),
});

const crud = ["create", "delete", "get", "list", "patch", "update", "watch"];

const documents: Record<string, unknown> = {
  "/version": { major: "1", minor: "32", gitVersion: "v1.32.4", platform: "linux/amd64" },
  "/api": {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1:0" }],
  },
  "/apis": {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: ["authorization.k8s.io/v1", "kubevirt.io/v1"].map((gv) => {
      const [group, version] = gv.split("/");
      return {
        name: group,
        versions: [{ groupVersion: gv, version }],
        preferredVersion: { groupVersion: gv, version },
      };
    }),
  },
  "/api/v1": resourceList("v1", [
    res("namespaces", "Namespace", false, crud, ["ns"]),
    res("configmaps", "ConfigMap", true, crud, ["cm"]),
    res("secrets", "Secret", true, crud),
    res("serviceaccounts", "ServiceAccount", true, crud, ["sa"]),
    res("services", "Service", true, crud, ["svc"]),
  ]),
  "/apis/authorization.k8s.io/v1": resourceList("authorization.k8s.io/v1", [
    res("selfsubjectaccessreviews", "SelfSubjectAccessReview", false, ["create"]),
  ]),
  "/apis/kubevirt.io/v1": resourceList("kubevirt.io/v1", [
    res("virtualmachines", "VirtualMachine", true, crud, ["vm", "vms"]),
  ]),
};

function send(w: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  w.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  w.end(text);
}

function answer(req: IncomingMessage, body: Buffer, w: ServerResponse) {
  const path = (req.url ?? "/").split("?")[0]!;
  if (req.method === "GET" && Object.hasOwn(documents, path)) {
    send(w, 200, documents[path]);
    return;
  }
  if (req.method === "POST") {
    if (path.endsWith("/selfsubjectaccessreviews")) {
      return send(w, 201, {
        kind: "SelfSubjectAccessReview",
        apiVersion: "authorization.k8s.io/v1",
        metadata: {},
        spec: {},
        status: { allowed: true },
      });
    }
    const kinds: Record<string, string> = {
      namespaces: "Namespace",
      configmaps: "ConfigMap",
      secrets: "Secret",
      serviceaccounts: "ServiceAccount",
      services: "Service",
    };
    const resource = path.split("/").pop() ?? "";
    const kind = kinds[resource];
    if (kind) {
      return send(w, 201, {
        kind,
        apiVersion: "v1",
        metadata: { name: "captured", uid: "00000000-0000-0000-0000-000000000001" },
      });
    }
  }
  void body;
  send(w, 404, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    reason: "NotFound",
    code: 404,
    message: "not found",
  });
}

export async function startCaptureServer(): Promise<CaptureServer> {
  const requests: CapturedRequest[] = [];
  const server: Server = createServer((req, w) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? "", url: req.url ?? "", contentType: req.headers["content-type"], body });
      answer(req, body, w);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
