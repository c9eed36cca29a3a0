// The compiled virtctl binary against a scripted API on loopback: kubeconfig resolution and the error contract.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const BIN = join(import.meta.dirname, "..", "dist", "cmd", "virtctl.js");

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("virtctl binary", () => {
  it("uses $KUBECONFIG's server and context namespace, prints the server's Status message and exits 1", async (t) => {
    const seen: string[] = [];
    const srv = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
      res.setHeader("Content-Type", "application/json");
      if (req.url?.includes("/stop")) {
        res.statusCode = 409;
        res.end(
          JSON.stringify({
            kind: "Status",
            apiVersion: "v1",
            status: "Failure",
            reason: "Conflict",
            code: 409,
            message: 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "vm1": VM is not running',
          }),
        );
        return;
      }
      res.statusCode = 202;
      res.end();
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    t.after(() => new Promise<void>((r) => srv.close(() => r())));
    const dir = mkdtempSync(join(tmpdir(), "virtctl-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const kc = join(dir, "kubeconfig");
    writeFileSync(
      kc,
      [
        "apiVersion: v1",
        "kind: Config",
        "current-context: c",
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:" + (srv.address() as AddressInfo).port + "'}}]",
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: team}}]",
        "users: [{name: u, user: {token: secret}}]",
      ].join("\n"),
    );
    const ok = await run(["start", "vm1"], { KUBECONFIG: kc });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, "VM vm1 was scheduled to start\n");
    const bad = await run(["stop", "vm1", "-n", "other"], { KUBECONFIG: kc });
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stderr,
      'Error: Operation cannot be fulfilled on virtualmachine.kubevirt.io "vm1": VM is not running\n',
    );
    assert.deepEqual(seen, [
      "PUT /apis/subresources.kubevirt.io/v1/namespaces/team/virtualmachines/vm1/start Bearer secret",
      "PUT /apis/subresources.kubevirt.io/v1/namespaces/other/virtualmachines/vm1/stop Bearer secret",
    ]);
  });
});
