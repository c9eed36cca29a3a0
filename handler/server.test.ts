import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { WebSocket } from "ws";
import { startServer } from "./server.js";

describe("handler HTTP endpoint", () => {
  it("serves pods/log (tail, follow) and bridges the console WebSocket to the launcher's console socket", {
    timeout: 30_000,
  }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "tsvirt-srv-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "launcher.log"), "one\ntwo\nthree\n");
    await mkdir(join(dir, "sockets"));
    // The launcher's console socket, echoing in upper case.
    const serial = createServer((c) => c.on("data", (d) => c.write(d.toString().toUpperCase())));
    await new Promise<void>((r) => serial.listen(join(dir, "sockets", "console.sock"), r));
    t.after(() => serial.close());
    const srv = await startServer({
      host: "127.0.0.1",
      port: 0,
      podDir: (ns, name) => (ns === "default" && name === "virt-launcher-vm1-abcde" ? dir : undefined),
      vmiPodDir: (ns, name) => (ns === "default" && name === "vm1" ? dir : undefined),
    });
    t.after(() => srv.close());
    const base = `http://127.0.0.1:${srv.port}`;

    assert.equal(
      await (await fetch(`${base}/containerLogs/default/virt-launcher-vm1-abcde/compute`)).text(),
      "one\ntwo\nthree\n",
    );
    assert.equal(
      await (await fetch(`${base}/containerLogs/default/virt-launcher-vm1-abcde/compute?tailLines=2`)).text(),
      "two\nthree\n",
    );
    const nf = await fetch(`${base}/containerLogs/default/nope/compute`);
    assert.equal(nf.status, 404);
    assert.equal(((await nf.json()) as { reason: string }).reason, "NotFound");

    // follow: bytes appended later arrive on the open stream.
    const ac = new AbortController();
    const res = await fetch(`${base}/containerLogs/default/virt-launcher-vm1-abcde/compute?follow=true&tailLines=0`, {
      signal: ac.signal,
    });
    const reader = res.body?.getReader();
    assert.ok(reader);
    await appendFile(join(dir, "launcher.log"), "four\n");
    const { value } = await reader.read();
    assert.equal(Buffer.from(value ?? []).toString(), "four\n");
    ac.abort();

    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/v1/namespaces/default/virtualmachineinstances/vm1/console`, [
      "plain.kubevirt.io",
    ]);
    t.after(() => ws.terminate());
    await new Promise((r, j) => {
      ws.once("open", r);
      ws.once("error", j);
    });
    assert.equal(ws.protocol, "plain.kubevirt.io");
    const echoed = new Promise<string>((r) => ws.once("message", (d: Buffer) => r(d.toString())));
    ws.send(Buffer.from("echo hi\n"));
    assert.equal(await echoed, "ECHO HI\n");
  });
});
