import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseQuantity } from "./quantity.js";

describe("parseQuantity", () => {
  const cases: [string | number, number | undefined][] = [
    ["128Mi", 128 * 2 ** 20],
    ["1Gi", 2 ** 30],
    ["1024M", 1.024e9],
    ["2G", 2e9],
    ["500m", 0.5],
    ["1.5", 1.5],
    ["1e3", 1000],
    ["64k", 64000],
    [3, 3],
    ["12Qi", undefined],
    ["", undefined],
  ];
  for (const [q, want] of cases) it(`${JSON.stringify(q)} → ${want}`, () => assert.equal(parseQuantity(q), want));
});
