import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ImageCache } from "./cache.js";
import { nodeImagePuller } from "./node-puller.js";
import { emptyRegistriesConfig } from "./registries-conf.js";

const D1 = `sha256:${"1".repeat(64)}`;
const D2 = `sha256:${"2".repeat(64)}`;

describe("nodeImagePuller pins", () => {
  it("release drops exactly one VMI's pins; releaseExcept those of VMIs no longer known (after a restart)", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvirt-pins-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // Pins written by an earlier agent process: files named by VMI uid and digest.
    const before = ImageCache.open(dir);
    await before.pin("vmi-a", D1);
    await before.pin("vmi-b", D1);
    await before.pin("vmi-b", D2);
    await before.pin("vmi-c", D2);
    const puller = nodeImagePuller({ cacheDir: dir, registries: emptyRegistriesConfig });
    await puller.release("vmi-c");
    assert.deepEqual([...(await before.pins()).keys()].sort(), ["vmi-a", "vmi-b"]);
    assert.deepEqual(await puller.releaseExcept(new Set(["vmi-a"])), ["vmi-b"]);
    assert.deepEqual([...(await before.pins()).entries()], [["vmi-a", [D1]]]);
  });
});
