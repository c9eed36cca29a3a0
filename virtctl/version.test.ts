import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClient } from "../client/index.js";
import { runVirtctl } from "./testing.js";

describe("virtctl version", () => {
  it("prints the client version and the server's from the subresource API", async () => {
    const c = new FakeClient();
    c.prependReactor("getPath", "/apis/subresources.kubevirt.io/v1/version", () => ({
      result: { gitVersion: "v1.8.0-tsvirt", platform: "linux/amd64" },
    }));
    const r = await runVirtctl(["version"], c);
    assert.equal(r.code, 0);
    const lines = r.out.trim().split("\n");
    assert.match(lines[0]!, /^Client Version: version\.Info\{GitVersion:"v1\.8\.0-tsvirt[^"]*", /);
    assert.match(
      lines[1]!,
      /^Server Version: version\.Info\{GitVersion:"v1\.8\.0-tsvirt", .*Platform:"linux\/amd64"\}$/,
    );
  });

  it("--client does not contact the server", async () => {
    const r = await runVirtctl(["version", "--client"]);
    assert.equal(r.client.actions.length, 0);
    assert.match(r.out, /^Client Version: /);
  });
});
