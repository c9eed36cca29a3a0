import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { LauncherClient } from "./client.js";
import { FakeHypervisor } from "./hypervisor/index.js";
import type { DomainInfo } from "./protocol.js";
import { LauncherCore, serveCommands } from "./server.js";

const uid = "0b9d6c1e-1111-4a2b-9c3d-123456789abc";

function newVmi(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "kubevirt.io/v1",
    kind: "VirtualMachineInstance",
    metadata: { name: "vm1", namespace: "default", uid },
    spec: { domain: { devices: {} }, ...extra },
  };
}

async function setup(t: { after: (fn: () => unknown) => void }, hv = new FakeHypervisor()) {
  const dir = await mkdtemp(path.join(tmpdir(), "tsvirt-ls-"));
  let started = 0;
  const core = new LauncherCore({
    uid,
    hv,
    build: async (vmi) => `<domain type="qemu"><name>${vmi.metadata?.namespace}_${vmi.metadata?.name}</name></domain>`,
    onStarted: () => {
      started++;
    },
  });
  const sock = path.join(dir, "launcher.sock");
  const server = await serveCommands(core, sock);
  const client = await LauncherClient.connect(sock);
  t.after(async () => {
    client.close();
    core.close();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { hv, core, client, started: () => started };
}

function nextMatching(client: LauncherClient, pred: (d: DomainInfo) => boolean): Promise<DomainInfo> {
  return new Promise((resolve) => {
    const stop = client.watch((d) => {
      if (pred(d)) {
        stop();
        resolve(d);
      }
    });
  });
}

describe("launcher command socket", () => {
  it("answers Ping with the protocol version and its uid", async (t) => {
    const { client } = await setup(t);
    const r = await client.call("Ping");
    assert.equal(r.version, 1);
    assert.equal(r.uid, uid);
  });

  it("Sync defines and starts the domain once; a second Sync is a no-op", async (t) => {
    const { client, hv, started } = await setup(t);
    const a = await client.call("Sync", { vmi: newVmi() });
    assert.equal(a.name, "default_vm1");
    assert.deepEqual(a.status, { state: "Running", reason: "Booted" });
    const b = await client.call("Sync", { vmi: newVmi() });
    assert.deepEqual(b.status, { state: "Running", reason: "Booted" });
    assert.deepEqual(
      hv.calls.filter((c) => c === "start"),
      ["start"],
    );
    assert.equal(started(), 1);
  });

  it("ResizeDisks grows each disk the running guest sees smaller than its volume, once; bad params are a 400", async (t) => {
    const { client, hv } = await setup(t);
    assert.deepEqual(
      await client.call("ResizeDisks", { disks: [{ path: "/v/disk.img", bytes: 2048 }] }),
      {
        resized: [],
      },
      "no domain yet: nothing to do",
    );
    await client.call("Sync", { vmi: newVmi() });
    hv.blockSizes.set("/v/disk.img", 1024);
    hv.blockSizes.set("/dev/loop3", 4096);
    const disks = [
      { path: "/v/disk.img", bytes: 2048 },
      { path: "/dev/loop3", bytes: 4096 },
    ];
    assert.deepEqual(await client.call("ResizeDisks", { disks }), {
      resized: [{ path: "/v/disk.img", fromBytes: 1024, toBytes: 2048 }],
    });
    assert.equal(hv.blockSizes.get("/v/disk.img"), 2048);
    assert.deepEqual(await client.call("ResizeDisks", { disks }), { resized: [] }, "again: sizes agree");
    assert.equal(hv.calls.filter((c) => c === "blockResize").length, 1);
    await assert.rejects(client.call("ResizeDisks", { disks: [{ path: "", bytes: -1 }] }), /Invalid params/);
  });

  it("refuses a VMI with another uid", async (t) => {
    const { client } = await setup(t);
    const vmi = newVmi();
    (vmi.metadata as { uid: string }).uid = "someone-else";
    await assert.rejects(client.call("Sync", { vmi }), (e: Error & { reason?: string }) => e.reason === "UIDMismatch");
  });

  it("rejects malformed requests with BadRequest and keeps serving", async (t) => {
    const { client } = await setup(t);
    await assert.rejects(client.call("Sync", { notAVmi: true }), (e: Error & { reason?: string }) => {
      return e.reason === "BadRequest" && /Invalid params for Sync/.test(e.message);
    });
    assert.equal((await client.call("Ping")).version, 1);
  });

  it("Watch sends the current state first, then every change", async (t) => {
    const { client } = await setup(t);
    const first = await nextMatching(client, () => true);
    assert.equal(first.status, undefined);
    await client.call("Sync", { vmi: newVmi() });
    const seen: string[] = [];
    const paused = new Promise<void>((resolve) => {
      client.watch((d) => {
        seen.push(`${d.status?.state}/${d.status?.reason}`);
        if (d.status?.state === "Paused") resolve();
      });
    });
    await client.call("Pause");
    await paused;
    assert.equal(seen[0], "Running/Booted");
    assert.ok(seen.includes("Paused/User"));
    const r = await client.call("Unpause");
    assert.deepEqual(r.status, { state: "Running", reason: "Unpaused" });
  });

  it("Shutdown powers off a guest that honours ACPI: Shutoff/Shutdown", async (t) => {
    const { client } = await setup(t);
    await client.call("Sync", { vmi: newVmi() });
    const off = nextMatching(client, (d) => d.status?.state === "Shutoff");
    await client.call("Shutdown", { gracePeriodSeconds: 30 });
    assert.deepEqual((await off).status, { state: "Shutoff", reason: "Shutdown" });
  });

  it("Shutdown destroys a guest that ignores ACPI once the grace period has passed", async (t) => {
    const { client } = await setup(t, new FakeHypervisor({ honorsAcpi: false }));
    await client.call("Sync", { vmi: newVmi() });
    const off = nextMatching(client, (d) => d.status?.state === "Shutoff");
    const r = await client.call("Shutdown", { gracePeriodSeconds: 1 });
    assert.equal(r.status?.state, "Running", "Shutdown answers before the grace period ends");
    assert.deepEqual((await off).status, { state: "Shutoff", reason: "Destroyed" });
  });

  it("terminate() waits for the guest within the grace period", async (t) => {
    const { client, core } = await setup(t, new FakeHypervisor({ honorsAcpi: false }));
    await client.call("Sync", { vmi: newVmi({ terminationGracePeriodSeconds: 0 }) });
    const st = await core.terminate(1);
    assert.deepEqual(st, { state: "Shutoff", reason: "Destroyed" });
  });

  it("Shutdown, then SIGTERM: one shutdown (one ACPI press); terminate resolves once the guest powers off", async (t) => {
    const { client, core, hv } = await setup(t, new FakeHypervisor({ honorsAcpi: false }));
    await client.call("Sync", { vmi: newVmi() });
    await client.call("Shutdown", { gracePeriodSeconds: 30 });
    const terminated = core.terminate();
    const off = nextMatching(client, (d) => d.status?.state === "Shutoff");
    await client.call("Ping"); // the terminate's turn in the launcher's queue has come and gone
    assert.deepEqual(
      hv.calls.filter((c) => c === "shutdown" || c === "destroy"),
      ["shutdown"],
    );
    // The guest handles the press (later than the fake's synchronous power-off would).
    hv.setState("default_vm1", { state: "Shutoff", reason: "Shutdown" }, "Stopped");
    assert.deepEqual(await terminated, { state: "Shutoff", reason: "Shutdown" });
    assert.deepEqual((await off).status, { state: "Shutoff", reason: "Shutdown" });
  });

  it("SIGTERM with a shorter grace period brings the destroy of a shutdown under way closer", async (t) => {
    const { client, core, hv } = await setup(t, new FakeHypervisor({ honorsAcpi: false }));
    await client.call("Sync", { vmi: newVmi() });
    await client.call("Shutdown", { gracePeriodSeconds: 600 });
    assert.deepEqual(await core.terminate(1), { state: "Shutoff", reason: "Destroyed" });
    assert.deepEqual(hv.calls.slice(-2), ["shutdown", "destroy"]);
  });

  it("a stopped VMI does not boot again on Sync", async (t) => {
    const { client, hv } = await setup(t);
    await client.call("Sync", { vmi: newVmi() });
    hv.setState("default_vm1", { state: "Shutoff", reason: "Crashed" }, "Stopped");
    await nextMatching(client, (d) => d.status?.reason === "Crashed");
    const r = await client.call("Sync", { vmi: newVmi() });
    assert.deepEqual(r.status, { state: "Shutoff", reason: "Crashed" });
  });

  it("methods before Sync answer NotFound; unsupported calls say so", async (t) => {
    const { client } = await setup(t);
    await assert.rejects(client.call("Pause"), (e: Error & { reason?: string }) => e.reason === "NotFound");
    const d = await client.call("GetDomain");
    assert.equal(d.domain.uid, uid);
    await client.call("Sync", { vmi: newVmi() });
    const stats = await client.call("GetDomainStats");
    assert.equal(stats.state, "Running");
    const got = await client.call("GetDomain");
    assert.match(got.xml ?? "", /<name>default_vm1<\/name>/);
  });
});
