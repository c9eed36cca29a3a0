import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { argvNamesPodDir, stopSignalTarget, unwatchedExit } from "./processes.js";

describe("argvNamesPodDir", () => {
  const dir = "/data/pods/0b850ef8891a4e8a";
  it("matches a launcher's pod dir and a worker's job file in it", () => {
    assert.equal(argvNamesPodDir(["node", "launcher.js", "--pod-dir", dir], dir), true);
    assert.equal(argvNamesPodDir(["node", "tsvirt.js", "uploadserver", "--job", `${dir}/job.json`], dir), true);
  });
  it("does not match another pod whose dir shares a prefix, or no pod dir at all", () => {
    assert.equal(argvNamesPodDir(["node", "tsvirt.js", "importer", "--job", `${dir}0/job.json`], dir), false);
    assert.equal(argvNamesPodDir(["node", "tsvirt.js", "importer", "--job", "/elsewhere/job.json"], dir), false);
  });
});

describe("unwatchedExit", () => {
  it("a launcher that left its termination message ended by itself; without one it was killed", () => {
    // e.g. its domain migrated away while the node agent was down: the pod Succeeded, not Failed (137)
    assert.deepEqual(unwatchedExit('{"state":"Shutoff","reason":"Migrated"}\n', "t"), {
      exitCode: 0,
      finishedAt: "t",
      reason: "Completed",
    });
    assert.deepEqual(unwatchedExit("", "t"), { exitCode: 137, finishedAt: "t", reason: "Error" });
    assert.equal(unwatchedExit(" \n", "t").exitCode, 137);
  });
});

describe("stopSignalTarget", () => {
  it("a launcher pod's unshare passes SIGTERM to the pod's init; a worker pod's process gets it itself", () => {
    assert.equal(stopSignalTarget(10, "unshare", [11, 12]), 11);
    assert.equal(stopSignalTarget(10, "/usr/bin/unshare", [11]), 11);
    assert.equal(stopSignalTarget(10, "unshare", []), undefined, "an unshare with no init left: nothing to ask");
    // a clone source, importer or upload server: never its child (a qemu-img the worker runs), never nothing
    assert.equal(stopSignalTarget(20, "/usr/bin/node", [21]), 20);
    assert.equal(stopSignalTarget(20, "/usr/bin/node", []), 20);
  });
});
