import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VmiPhase } from "../api/index.js";
import { type DomainState, isFinal, phaseFor } from "./phase.js";

interface Case {
  name: string;
  domain: DomainState | undefined;
  current?: VmiPhase;
  acpi?: boolean;
  want: VmiPhase;
}

const cases: Case[] = [
  { name: "no domain keeps the phase", domain: undefined, current: "Scheduled", want: "Scheduled" },
  { name: "running/booted", domain: { state: "Running", reason: "Booted" }, current: "Scheduled", want: "Running" },
  { name: "running/unpaused", domain: { state: "Running", reason: "Unpaused" }, want: "Running" },
  { name: "blocked", domain: { state: "Blocked", reason: "Unknown" }, want: "Running" },
  { name: "pmsuspended", domain: { state: "PMSuspended", reason: "Unknown" }, want: "Running" },
  { name: "paused by user is still Running", domain: { state: "Paused", reason: "User" }, want: "Running" },
  { name: "paused on I/O error is still Running", domain: { state: "Paused", reason: "IOError" }, want: "Running" },
  { name: "paused, postcopy failed", domain: { state: "Paused", reason: "PostcopyFailed" }, want: "Failed" },
  { name: "guest shut down", domain: { state: "Shutoff", reason: "Shutdown" }, want: "Succeeded" },
  { name: "QEMU died (crashed)", domain: { state: "Shutoff", reason: "Crashed" }, want: "Failed" },
  { name: "crashed/panicked", domain: { state: "Crashed", reason: "Panicked" }, want: "Failed" },
  { name: "shutoff/failed to start", domain: { state: "Shutoff", reason: "Failed" }, want: "Failed" },
  { name: "destroyed with ACPI", domain: { state: "Shutoff", reason: "Destroyed" }, acpi: true, want: "Failed" },
  { name: "destroyed without ACPI", domain: { state: "Shutoff", reason: "Destroyed" }, acpi: false, want: "Succeeded" },
  { name: "saved", domain: { state: "Shutoff", reason: "Saved" }, want: "Succeeded" },
  { name: "from snapshot", domain: { state: "Shutoff", reason: "FromSnapshot" }, want: "Succeeded" },
  { name: "migrated away keeps the phase", domain: { state: "Shutoff", reason: "Migrated" }, want: "Running" },
  {
    name: "defined, never started",
    domain: { state: "Shutoff", reason: "Unknown" },
    current: "Scheduled",
    want: "Scheduled",
  },
  { name: "no state", domain: { state: "NoState", reason: "Unknown" }, current: "Scheduled", want: "Scheduled" },
];

describe("phaseFor", () => {
  for (const c of cases) {
    it(c.name, () => {
      assert.equal(phaseFor({ domain: c.domain, current: c.current ?? "Running", acpi: c.acpi ?? true }), c.want);
    });
  }
  it("marks only Succeeded and Failed final", () => {
    assert.deepEqual(
      (["Pending", "Scheduled", "Running", "Succeeded", "Failed", "Unknown"] as VmiPhase[]).filter(isFinal),
      ["Succeeded", "Failed"],
    );
  });
});
