import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { VmiPhase } from "../api/index.js";
import type { DomainStatus as DomainState } from "../launcher/index.js";
import { acpiShutdown, isFinal, isPaused, type PhaseVmi, phaseFor, vmiPhaseFor } from "./phase.js";

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

describe("vmiPhaseFor", () => {
  const vmi = (spec: PhaseVmi["spec"], phase: VmiPhase = "Running"): PhaseVmi => ({ spec, status: { phase } });
  const destroyed: DomainState = { state: "Shutoff", reason: "Destroyed" };
  const acpiCases: { name: string; spec: PhaseVmi["spec"]; want: boolean }[] = [
    { name: "defaults: ACPI on, default grace", spec: {}, want: true },
    { name: "grace period 0 (destroyed at once)", spec: { terminationGracePeriodSeconds: 0 }, want: false },
    { name: "grace period 30", spec: { terminationGracePeriodSeconds: 30 }, want: true },
    { name: "ACPI disabled", spec: { domain: { features: { acpi: { enabled: false } } } }, want: false },
    { name: "ACPI enabled explicitly", spec: { domain: { features: { acpi: { enabled: true } } } }, want: true },
  ];
  for (const c of acpiCases) {
    it(`ACPI shutdown: ${c.name}`, () => {
      assert.equal(acpiShutdown(vmi(c.spec)), c.want);
      assert.equal(vmiPhaseFor(destroyed, vmi(c.spec)), c.want ? "Failed" : "Succeeded");
    });
  }
  it("keeps the VMI's phase when the domain says nothing new", () => {
    assert.equal(vmiPhaseFor(undefined, vmi({}, "Scheduled")), "Scheduled");
    assert.equal(vmiPhaseFor({ state: "Shutoff", reason: "Unknown" }, vmi({}, "Scheduled")), "Scheduled");
    assert.equal(vmiPhaseFor(undefined, { spec: {} }), "");
  });
  it("a booted domain makes a Scheduled VMI Running", () => {
    assert.equal(vmiPhaseFor({ state: "Running", reason: "Booted" }, vmi({}, "Scheduled")), "Running");
  });
  it("a migration that failed in post-copy fails the VMI whatever its domain shows (KubeVirt's irrecoverable VMI)", () => {
    const after = (mode: string, failed = true): PhaseVmi => ({
      spec: {},
      status: { phase: "Running", migrationState: { failed, mode } },
    });
    const paused: DomainState = { state: "Paused", reason: "Postcopy" };
    assert.equal(vmiPhaseFor(paused, after("PostCopy")), "Failed");
    assert.equal(vmiPhaseFor({ state: "Shutoff", reason: "Destroyed" }, after("PostCopy")), "Failed");
    assert.equal(vmiPhaseFor({ state: "Paused", reason: "PostcopyFailed" }, vmi({})), "Failed");
    // a failed pre-copy or paused migration leaves the guest whole on the source; a completed post-copy is fine
    assert.equal(vmiPhaseFor({ state: "Running", reason: "Unpaused" }, after("Paused")), "Running");
    assert.equal(vmiPhaseFor({ state: "Running", reason: "Booted" }, after("PreCopy")), "Running");
    assert.equal(vmiPhaseFor({ state: "Running", reason: "Migrated" }, after("PostCopy", false)), "Running");
    assert.equal(vmiPhaseFor(undefined, after("PostCopy")), "Running", "no domain: nothing new");
  });
});

describe("isPaused", () => {
  it("a user pause or an I/O error pause shows; the start-up pause and other states do not", () => {
    assert.equal(isPaused({ state: "Paused", reason: "User" }), true);
    assert.equal(isPaused({ state: "Paused", reason: "IOError" }), true);
    assert.equal(isPaused({ state: "Paused", reason: "StartingUp" }), false);
    assert.equal(isPaused({ state: "Paused", reason: "Postcopy" }), false, "the source of a post-copy migration");
    assert.equal(isPaused({ state: "Running", reason: "Booted" }), false);
    assert.equal(isPaused(undefined), false);
  });
});
