import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planShutdown, type ShutdownInput, type ShutdownStep } from "./shutdown.js";

const NOW = 1_000_000;

describe("planShutdown (one graceful shutdown per domain)", () => {
  const cases: { name: string; input: Omit<ShutdownInput, "nowMs">; want: ShutdownStep }[] = [
    { name: "nothing running", input: { active: false, acpi: true, graceMs: 30_000 }, want: { action: "none" } },
    {
      name: "first request: one ACPI press, destroy at now + grace",
      input: { active: true, acpi: true, graceMs: 30_000 },
      want: { action: "acpi", deadlineMs: NOW + 30_000 },
    },
    {
      name: "no ACPI: destroy at once",
      input: { active: true, acpi: false, graceMs: 30_000 },
      want: { action: "destroy" },
    },
    {
      name: "grace period 0: destroy at once",
      input: { active: true, acpi: true, graceMs: 0 },
      want: { action: "destroy" },
    },
    {
      name: "SIGTERM after the node agent's Shutdown: joins it, no second press, same deadline",
      input: { active: true, acpi: true, graceMs: 30_000, deadlineMs: NOW + 25_000 },
      want: { action: "wait", deadlineMs: NOW + 25_000 },
    },
    {
      name: "a shorter grace period brings the deadline closer",
      input: { active: true, acpi: true, graceMs: 5_000, deadlineMs: NOW + 25_000 },
      want: { action: "wait", deadlineMs: NOW + 5_000 },
    },
    {
      name: "grace 0 during a graceful shutdown: destroy now",
      input: { active: true, acpi: true, graceMs: 0, deadlineMs: NOW + 25_000 },
      want: { action: "destroy" },
    },
    {
      name: "a deadline already past: destroy now",
      input: { active: true, acpi: true, graceMs: 30_000, deadlineMs: NOW },
      want: { action: "destroy" },
    },
    {
      name: "a domain that stopped meanwhile: nothing to do",
      input: { active: false, acpi: true, graceMs: 30_000, deadlineMs: NOW + 25_000 },
      want: { action: "none" },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(planShutdown({ ...c.input, nowMs: NOW }), c.want);
    });
  }
});
