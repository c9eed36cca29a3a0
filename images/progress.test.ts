import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatBytes, progressFigures, renderBar } from "./progress.js";

describe("progress", () => {
  it("computes rate and ETA", () => {
    const f = progressFigures(50 * 1024 * 1024, 100 * 1024 * 1024, 5000);
    assert.equal(f.rate, 10 * 1024 * 1024);
    assert.equal(f.etaSeconds, 5);
    assert.equal(progressFigures(0, 10, 0).etaSeconds, Number.POSITIVE_INFINITY);
    assert.equal(progressFigures(10, 10, 1).etaSeconds, 0);
  });
  it("renders a bar with bytes, rate and ETA", () => {
    const line = renderBar("pull x", progressFigures(50 * 1024 * 1024, 100 * 1024 * 1024, 5000), 10);
    assert.equal(line, "pull x [#####.....] 50.0 MiB / 100.0 MiB  10.0 MiB/s  ETA 5s");
    assert.equal(formatBytes(512), "512 B");
  });
});
