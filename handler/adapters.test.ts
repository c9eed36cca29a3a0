import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { isUnsharePod, terminatePodProcess } from "./adapters.js";

describe("isUnsharePod", () => {
  it("knows a launcher pod's unshare by its argv[0], with or without a path", () => {
    assert.equal(isUnsharePod("unshare\0--pid\0--fork\0--\0bash\0-c\0"), true);
    assert.equal(isUnsharePod("/usr/bin/unshare\0--pid\0"), true);
    assert.equal(isUnsharePod("/usr/bin/node\0/x/cmd/tsvirt.js\0clonesource\0--job\0/p/job.json\0"), false);
    assert.equal(isUnsharePod("/usr/bin/node\0unshare\0"), false);
    assert.equal(isUnsharePod(""), false);
  });
});

describe("terminatePodProcess", () => {
  it("a worker pod's process (not under unshare) gets the SIGTERM itself, not its child", async () => {
    // A worker that runs a helper (as importers do): it exits 0 on SIGTERM; the helper must not be what is signalled.
    const worker = spawn(
      process.execPath,
      [
        "-e",
        `const { spawn } = require("node:child_process");
         const h = spawn("sleep", ["30"], { stdio: "ignore" });
         process.on("SIGTERM", () => { h.kill("SIGKILL"); process.exit(0); });
         h.on("exit", (code, sig) => { console.log("helper ended " + sig); process.exit(3); });
         console.log("ready");`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    worker.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("the worker never got ready")), 10_000);
      worker.stdout.on("data", () => {
        if (out.includes("ready")) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    const started = Date.now();
    terminatePodProcess(worker.pid!);
    const [code] = (await Promise.race([
      once(worker, "exit"),
      new Promise((_, reject) => setTimeout(() => reject(new Error("no exit within 5 s")), 5_000)),
    ])) as [number | null];
    assert.equal(code, 0, `the worker itself handled SIGTERM (output: ${out})`);
    assert.ok(Date.now() - started < 5_000);
  });

  it("a pid that is gone is no error", () => {
    assert.doesNotThrow(() => terminatePodProcess(2 ** 22 + 12345));
  });
});
