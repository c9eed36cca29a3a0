import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { ConsoleProxy } from "./console.js";

function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (pred()) resolve();
      else if (Date.now() > deadline) reject(new Error(`timed out waiting for ${what}`));
      else setTimeout(tick, 10);
    };
    tick();
  });
}

describe("serial console proxy", () => {
  it("owns QEMU's single connection, replays recent output to each client, passes keystrokes, logs with a bound", async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-con-"));
    // a stand-in for QEMU's serial socket: one client, echoes what it receives in upper case
    let qemuSide: net.Socket | undefined;
    const qemu = net.createServer((c) => {
      qemuSide = c;
      c.on("data", (d: Buffer) => c.write(d.toString().toUpperCase()));
    });
    await new Promise<void>((r) => qemu.listen(path.join(dir, "serial0"), r));
    const proxy = new ConsoleProxy({
      serialSocket: path.join(dir, "serial0"),
      listenPath: path.join(dir, "console.sock"),
      logFile: path.join(dir, "serial.log"),
      replayBytes: 16,
      logMaxBytes: 64,
    });
    t.after(async () => {
      await proxy.close();
      qemu.close();
      await rm(dir, { recursive: true, force: true });
    });
    await proxy.listen();
    await proxy.attach();
    await until("QEMU side", () => qemuSide !== undefined);
    qemuSide?.write("boot line one\nREADY-MARKER\n");
    await until(
      "proxy attached output",
      () =>
        existsSync(path.join(dir, "serial.log")) &&
        readFileSync(path.join(dir, "serial.log"), "utf8").includes("READY"),
    );

    let got = "";
    const client = net.createConnection(path.join(dir, "console.sock"));
    client.on("data", (d: Buffer) => {
      got += d.toString();
    });
    await until("replay", () => got.includes("READY-MARKER"));
    assert.ok(got.length <= 16, `replay bounded to 16 bytes, got ${JSON.stringify(got)}`);
    client.write("echo hi\n");
    await until("echo through the guest", () => got.includes("ECHO HI"));

    for (let i = 0; i < 10; i++) qemuSide?.write(`line ${i} of filler output\n`);
    await until("log rotation", () => existsSync(path.join(dir, "serial.log.1")));
    client.destroy();
  });
});
