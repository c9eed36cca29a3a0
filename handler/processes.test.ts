import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { argvNamesPodDir } from "./processes.js";

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
