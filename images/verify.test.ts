import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { summarizeVerify } from "./verify.js";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;

describe("summarizeVerify", () => {
  it("consistent when every registry serves one digest", () => {
    const r = summarizeVerify("r/x:1", [
      { source: "m/x", digest: A },
      { source: "r/x", digest: A },
    ]);
    assert.equal(r.consistent, true);
    assert.equal(r.digest, A);
  });
  it("inconsistent: two digests, a failing registry, no registry, or not the digest the ref names", () => {
    assert.equal(
      summarizeVerify("r/x:1", [
        { source: "m/x", digest: A },
        { source: "r/x", digest: B },
      ]).consistent,
      false,
    );
    const failed = summarizeVerify("r/x:1", [
      { source: "m/x", digest: A },
      { source: "r/x", error: { kind: "notFound", message: "404" } },
    ]);
    assert.equal(failed.consistent, false);
    assert.equal(failed.digest, undefined);
    assert.equal(summarizeVerify("r/x:1", []).consistent, false);
    assert.equal(summarizeVerify(`r/x@${B}`, [{ source: "r/x", digest: A }], B).consistent, false);
  });
});
