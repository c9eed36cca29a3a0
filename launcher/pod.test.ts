import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { commandSocketPath, POD_INIT, podCommand, podPaths, validUid } from "./pod.js";

describe("launcher pod command", () => {
  it("passes user data only as positional arguments to a fixed init script", () => {
    const uid = "3f1c9a2e-7d4b-4c1a-9e2f-0a1b2c3d4e5f";
    const c = podCommand({
      uid,
      podDir: "/run/tsvirt/pods/p1",
      lockDir: "/run/tsvirt/locks",
      tsvirtJs: "/opt/tsvirt/dist/cmd/tsvirt.js",
    });
    assert.equal(c.command, "unshare");
    assert.deepEqual(c.args.slice(0, 4), ["--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc"]);
    const i = c.args.indexOf("-c");
    assert.equal(c.args[i + 1], POD_INIT);
    assert.ok(!POD_INIT.includes(uid));
    assert.equal(c.args[i + 3], `/run/tsvirt/locks/${uid}.lock`);
    assert.deepEqual(c.args.slice(-9), [
      "launcher",
      "--uid",
      uid,
      "--pod-dir",
      "/run/tsvirt/pods/p1",
      "--node-dir",
      "/var/lib/tsvirt",
      "--socket",
      `/var/lib/tsvirt/sockets/${uid}_sock`,
    ]);
    assert.equal(c.env.TSVIRT_LAUNCHER_POD, "1");
  });

  it("refuses uids that could escape a directory or break a path", () => {
    for (const bad of ["../x", "a/b", "", ".hidden", "x".repeat(80), "a b"]) assert.equal(validUid(bad), false, bad);
    assert.throws(
      () => podCommand({ uid: "../etc", podDir: "/p", lockDir: "/l", tsvirtJs: "/t.js" }),
      /invalid VMI uid/,
    );
  });

  it("keeps every socket path within sun_path (107 bytes) or refuses", () => {
    assert.ok(podPaths("/run/tsvirt/pods/0123456789abcdef").consoleSocket.length < 100);
    assert.throws(
      () => podCommand({ uid: "u1", podDir: `/${"d".repeat(110)}`, lockDir: "/l", tsvirtJs: "/t.js" }),
      /too long for unix sockets/,
    );
    const uid = "3f1c9a2e-7d4b-4c1a-9e2f-0a1b2c3d4e5f";
    assert.equal(commandSocketPath("/var/lib/tsvirt/node01/", uid), `/var/lib/tsvirt/node01/sockets/${uid}_sock`);
    assert.throws(() => commandSocketPath(`/${"n".repeat(60)}`, uid), /node dir too long for unix sockets/);
    assert.throws(() => commandSocketPath("/n", "../x"), /invalid VMI uid/);
  });
});
