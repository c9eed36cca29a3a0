import assert from "node:assert/strict";
import { test } from "node:test";
import { parseQuantity } from "./quantity.js";

test("parseQuantity() reads binary, decimal, milli and exponent forms", () => {
  assert.equal(parseQuantity("128Mi"), 128 * 2 ** 20);
  assert.equal(parseQuantity("1Gi"), 2 ** 30);
  assert.equal(parseQuantity("1024M"), 1.024e9);
  assert.equal(parseQuantity("100m"), 0.1);
  assert.equal(parseQuantity("1.5"), 1.5);
  assert.equal(parseQuantity("1e3"), 1000);
  assert.equal(parseQuantity(2048), 2048);
});

test("parseQuantity() rejects what kube-apiserver rejects", () => {
  for (const bad of ["12x", "1 Gi", "Gi", "", "1.2.3", "0x10", "1iB"]) {
    assert.equal(parseQuantity(bad), undefined, bad);
  }
});
