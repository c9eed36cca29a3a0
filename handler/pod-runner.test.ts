// The pod runner against an in-memory API, with real network namespaces and real (stand-in) launcher processes:
// a node process that idles until SIGTERM, run as the launcher pod shape (pod-shapes.ts). Needs root.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { requirePrereqs } from "../tests/lib/prereqs.js";
import { waitFor } from "../tests/lib/process.js";
import { COMPUTE_CONTAINER, UNPAUSED_GATE } from "./launcher-pod.js";
import { inNetns, PodNetwork, podNetns, runCommand } from "./network/index.js";
import { PodRunner, type PodRunnerOptions } from "./pod-runner.js";
import { launcherShape } from "./pod-shapes.js";
import type { Pod, VirtualMachineInstance } from "./ports.js";
import { refs } from "./ports.js";
import { argvNamesPodDir, isLauncherAlive, pidsInNetns, podDirOf, readPodRecord } from "./processes.js";
import { FakeApi } from "./testing.js";

const NODE = `pr${process.pid}`;

function launcherPod(name: string, vmiUid: string): Pod {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: "default",
      uid: randomUUID(),
      labels: { "kubevirt.io": "virt-launcher", "kubevirt.io/created-by": vmiUid },
      ownerReferences: [
        { apiVersion: "kubevirt.io/v1", kind: "VirtualMachineInstance", name: "vm1", uid: vmiUid, controller: true },
      ],
    },
    spec: {
      nodeName: NODE,
      restartPolicy: "Never",
      containers: [{ name: COMPUTE_CONTAINER, image: "registry.example/virt-launcher:v1", command: ["/bin/evil"] }],
      readinessGates: [{ conditionType: UNPAUSED_GATE }],
    },
  };
}

/** A pod runner on the fake API whose launcher is a stand-in node script (`script`; argv[1] is the pod dir). */
function testRunner(
  dataDir: string,
  api: FakeApi,
  net: PodNetwork,
  script: string,
  extra: Partial<PodRunnerOptions> = {},
  probe: () => Promise<boolean> = async () => true,
): PodRunner {
  return new PodRunner({
    node: NODE,
    hostIP: "127.0.0.1",
    dataDir,
    api,
    network: () => net,
    getPod: (uid) => [...api.objects.values()].find((o) => o.metadata.uid === uid) as Pod | undefined,
    shapes: [
      launcherShape({
        node: NODE,
        dataDir,
        api,
        // its command line names the pod dir, as the real launcher's does
        launcherCommand: (_vmiUid, podDir) => ({ argv: [process.execPath, "-e", script, "--", podDir] }),
        probe,
      }),
    ],
    ...extra,
  });
}

/** Stops the runner, kills what is left in the pod's namespace, removes the node's network and the data dir. */
async function teardown(runner: PodRunner, net: PodNetwork, uid: string, dataDir: string): Promise<void> {
  runner.close();
  for (const p of await pidsInNetns(podNetns(uid))) process.kill(p, "SIGKILL");
  await net.teardownPod(uid).catch(() => {});
  await net.teardownNode().catch(() => {});
  await rm(dataDir, { recursive: true, force: true });
}

requirePrereqs("root", "ip", "iptables", "nsenter", "busybox");

describe("pod runner", () => {
  it("runs launcher pods only, reports them, survives its own restart, and deletes them with grace 0", {
    timeout: 120_000,
  }, async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-pr-"));
    const api = new FakeApi();
    const net = new PodNetwork({ node: NODE, podCIDR: "10.96.5.0/24", dataDir });
    // A stand-in launcher: idles until SIGTERM.
    const mk = () =>
      testRunner(
        dataDir,
        api,
        net,
        "process.on('SIGTERM',()=>process.exit(0));setInterval(()=>{},1000);console.log('launcher up')",
      );
    let runner = mk();
    const vmiUid = randomUUID();
    const pod = api.put(refs.pods, launcherPod("virt-launcher-vm1-abcde", vmiUid));
    const other = api.put(refs.pods, {
      ...launcherPod("nginx", randomUUID()),
      metadata: { name: "nginx", namespace: "default", uid: randomUUID() },
    });
    const uid = pod.metadata.uid ?? "";
    t.after(() => teardown(runner, net, uid, dataDir));

    await runner.trigger(other.metadata.uid ?? "");
    const failed = api.peek<Pod>(refs.pods, "default", "nginx");
    assert.equal(failed?.status?.phase, "Failed");
    assert.equal(failed?.status?.reason, "Unsupported");

    await runner.trigger(uid);
    let got = api.peek<Pod>(refs.pods, "default", pod.metadata.name ?? "");
    assert.equal(got?.status?.phase, "Running");
    assert.equal(got?.status?.podIP, "10.96.5.2");
    assert.equal(got?.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
    assert.equal(got?.status?.conditions?.find((c) => c.type === UNPAUSED_GATE)?.status, "True");
    const podDir = podDirOf(dataDir, uid);
    const rec = await readPodRecord(podDir);
    assert.ok(rec);
    // The launcher runs inside the pod's network namespace, and never the pod spec's command.
    assert.deepEqual(await pidsInNetns(podNetns(uid)).then((p) => p.includes(rec.pid)), true);
    const cmdline = await readFile(`/proc/${rec.pid}/cmdline`, "utf8");
    assert.ok(!cmdline.includes("/bin/evil"));

    // A restarted runner re-attaches: same process, no new status write.
    runner.close();
    const writesBefore = api.writes.length;
    runner = mk();
    await runner.trigger(uid);
    assert.equal((await readPodRecord(podDir))?.pid, rec.pid);
    assert.equal(api.writes.length, writesBefore, "no status write when nothing changed");

    // Deletion: the runner stops the launcher and deletes the pod with grace 0.
    got = api.peek<Pod>(refs.pods, "default", pod.metadata.name ?? "");
    assert.ok(got);
    got.metadata.deletionTimestamp = new Date().toISOString();
    got.metadata.deletionGracePeriodSeconds = 5;
    api.put(refs.pods, got);
    await runner.trigger(uid);
    const del = api.writes.find((w) => w.verb === "delete");
    assert.deepEqual(del?.opts, { gracePeriodSeconds: 0, preconditions: { uid } });
    assert.equal(api.peek(refs.pods, "default", pod.metadata.name ?? ""), undefined);
    assert.deepEqual(await pidsInNetns(podNetns(uid)), []);
    const netns = (await runCommand(["ip", "netns", "list"])).stdout;
    assert.ok(!netns.includes(podNetns(uid)));
    assert.equal(await net.ipam.lookup(uid), undefined);
  });

  it("a start a killed agent left half done (its process in the pod's namespace, no pod.json) does not run twice", {
    timeout: 120_000,
  }, async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-pr-"));
    const api = new FakeApi();
    const net = new PodNetwork({ node: NODE, podCIDR: "10.96.7.0/24", dataDir });
    const script = "setInterval(()=>{},1000)";
    const runner = testRunner(dataDir, api, net, script);
    const pod = api.put(refs.pods, launcherPod("virt-launcher-vm3-half", randomUUID()));
    const uid = pod.metadata.uid ?? "";
    t.after(() => teardown(runner, net, uid, dataDir));
    // What the killed agent got done: the namespace, and its launcher running there, detached, not yet recorded.
    const { netns } = await net.setupPodNamespace(uid);
    const podDir = podDirOf(dataDir, uid);
    const [file = "", ...args] = inNetns(netns, [process.execPath, "-e", script, "--", podDir]);
    const leftover = spawn(file, args, { detached: true, stdio: "ignore" });
    leftover.unref();
    const deadline = Date.now() + 10_000;
    while ((await pidsInNetns(netns)).length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal((await pidsInNetns(netns)).length, 1, "the leftover runs in the pod's namespace");

    await runner.trigger(uid);
    assert.equal(api.peek<Pod>(refs.pods, "default", pod.metadata.name ?? "")?.status?.phase, "Running");
    const rec = await readPodRecord(podDir);
    assert.ok(rec);
    // (the namespace holds the pod's DHCP server too, started with its links)
    const launchers: number[] = [];
    for (const p of await pidsInNetns(netns)) {
      const argv = (await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "")).split("\0");
      if (argvNamesPodDir(argv, podDir)) launchers.push(p);
    }
    assert.deepEqual(
      launchers,
      [rec.pid],
      `one launcher in the pod's namespace, the recorded one (${leftover.pid} left)`,
    );
  });

  it("reports a launcher that exits as a failed pod and never restarts it", { timeout: 120_000 }, async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-pr-"));
    const api = new FakeApi();
    const net = new PodNetwork({ node: NODE, podCIDR: "10.96.6.0/24", dataDir });
    const runner = testRunner(dataDir, api, net, "setInterval(()=>{},1000)");
    const pod = api.put(refs.pods, launcherPod("virt-launcher-vm2-xyzab", randomUUID()));
    const uid = pod.metadata.uid ?? "";
    t.after(async () => {
      runner.close();
      await net.teardownPod(uid).catch(() => {});
      await net.teardownNode().catch(() => {});
      await rm(dataDir, { recursive: true, force: true });
    });
    // The handler's event loop is always alive (watches, its HTTP server); the test keeps it alive the same way.
    const keepAlive = setInterval(() => {}, 1000);
    t.after(() => clearInterval(keepAlive));
    const changed = new Promise<void>((resolve) => {
      api.onChange = (_r, o) => {
        if ((o as Pod).status?.phase === "Failed") resolve();
      };
    });
    await runner.trigger(uid);
    const rec = await readPodRecord(podDirOf(dataDir, uid));
    assert.ok(rec);
    process.kill(rec.pid, "SIGKILL");
    await changed;
    await runner.idle();
    const got = api.peek<Pod>(refs.pods, "default", pod.metadata.name ?? "");
    assert.equal(got?.status?.phase, "Failed");
    assert.equal(got?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 137);
    assert.equal(got?.status?.podIP, "10.96.6.2");
    // Network freed, nothing restarted.
    assert.deepEqual(await pidsInNetns(podNetns(uid)), []);
    await runner.trigger(uid);
    assert.equal((await readPodRecord(podDirOf(dataDir, uid)))?.pid, rec.pid);
  });

  it("probes readiness periodically, as kubelet: a launcher that stops answering makes its pod NotReady", {
    timeout: 120_000,
  }, async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-pr-"));
    const api = new FakeApi();
    const net = new PodNetwork({ node: NODE, podCIDR: "10.96.9.0/24", dataDir });
    let answering = true;
    let probes = 0;
    const probe = async () => {
      probes++;
      return answering;
    };
    const opts = { readinessPeriodMs: 30, readinessFailureThreshold: 3 };
    const runner = testRunner(dataDir, api, net, "setInterval(()=>{},1000)", opts, probe);
    const pod = api.put(refs.pods, launcherPod("virt-launcher-vm3-probe", randomUUID()));
    const uid = pod.metadata.uid ?? "";
    t.after(() => teardown(runner, net, uid, dataDir));
    const readyOf = () =>
      api.peek<Pod>(refs.pods, "default", pod.metadata.name ?? "")?.status?.conditions?.find((c) => c.type === "Ready");
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
      await runner.idle();
      assert.ok(ok(), `timed out waiting for ${what}`);
    };
    await runner.trigger(uid);
    assert.equal(readyOf()?.status, "True");
    // Still probed after the first success; one or two failures in a row do not flip readiness.
    const before = probes;
    await until("more probes", () => probes >= before + 3);
    assert.equal(readyOf()?.status, "True");
    answering = false;
    await until("Ready=False", () => readyOf()?.status === "False");
    assert.equal(readyOf()?.reason, "ContainersNotReady");
    assert.ok(probes >= before + 3 + 3, "NotReady only after failureThreshold failed probes");
    answering = true;
    await until("Ready=True again", () => readyOf()?.status === "True");
    runner.close();
    const after = probes;
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(probes <= after + 1, "a closed runner stops probing");
  });

  for (const restart of [false, true]) {
    const title = restart
      ? "a deleted pod whose launcher ended while the agent was down: the restarted agent still reports how it ended"
      : "a deleted pod: its launcher ends first, its termination message is reported, the VMI's final phase is recorded, then the pod goes";
    it(title, { timeout: 120_000 }, async (t) => {
      const dataDir = await mkdtemp(join(tmpdir(), "tsvirt-pr-"));
      const api = new FakeApi();
      const net = new PodNetwork({ node: NODE, podCIDR: `10.96.${restart ? 8 : 7}.0/24`, dataDir });
      const vmiUid = randomUUID();
      const vmi: VirtualMachineInstance = {
        metadata: { name: "vm1", namespace: "default", uid: vmiUid },
        spec: { domain: { devices: {} } },
        status: { phase: "Running", nodeName: NODE },
      };
      api.put(refs.vmis, vmi);
      const pod = api.put(refs.pods, launcherPod(`virt-launcher-vm3-stop${restart ? "r" : "d"}`, vmiUid));
      const uid = pod.metadata.uid ?? "";
      // A stand-in launcher that, on SIGTERM, leaves the guest's end in its termination log and exits, as the real
      // one does once its guest has powered off.
      const mk = () =>
        testRunner(
          dataDir,
          api,
          net,
          `process.on("SIGTERM",()=>{require("fs").writeFileSync(process.argv[1]+"/termination-log",'{"state":"Shutoff","reason":"Shutdown"}');process.exit(0)});setInterval(()=>{},1000);console.log("launcher up")`,
        );
      let runner = mk();
      t.after(async () => {
        runner.close();
        for (const p of await pidsInNetns(podNetns(uid))) process.kill(p, "SIGKILL");
        await net.teardownPod(uid).catch(() => {});
        await net.teardownNode().catch(() => {});
        await rm(dataDir, { recursive: true, force: true });
      });
      const keepAlive = setInterval(() => {}, 1000);
      t.after(() => clearInterval(keepAlive));
      await runner.trigger(uid);
      const rec = await readPodRecord(podDirOf(dataDir, uid));
      assert.ok(rec);
      // Its SIGTERM handler is installed once it says so in its log (a node start on a loaded machine takes seconds:
      // a SIGTERM before it would end the stand-in without its termination log).
      await waitFor("the stand-in launcher's SIGTERM handler", async () =>
        (await readFile(join(podDirOf(dataDir, uid), "launcher.log"), "utf8").catch(() => "")).includes("up")
          ? true
          : undefined,
      );
      if (restart) {
        // The agent dies; the stop goes on without it (a SIGTERM it had sent), and the launcher ends.
        runner.close();
        process.kill(rec.pid, "SIGTERM");
        await waitFor("the launcher to end on SIGTERM", async () =>
          (await isLauncherAlive(rec, podDirOf(dataDir, uid))) ? undefined : true,
        );
        runner = mk();
      }
      const reported: Pod[] = [];
      let vmiFinalWhenRemoved: string | undefined;
      const gone = new Promise<void>((resolve) => {
        api.onChange = (_r, o, deleted) => {
          if (o.metadata.uid !== uid) return;
          if (!deleted) reported.push(o as Pod);
          if (deleted) {
            vmiFinalWhenRemoved = api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")?.status?.phase;
            resolve();
          }
        };
      });
      const got = api.peek<Pod>(refs.pods, "default", pod.metadata.name ?? "");
      assert.ok(got);
      got.metadata.deletionTimestamp = new Date().toISOString();
      got.metadata.deletionGracePeriodSeconds = 45;
      api.put(refs.pods, got);
      await runner.trigger(uid);
      // The terminated status with the termination message went to the API; the VMI is not final yet, so the pod
      // stays (its removal is retried) until VMI sync records the end it read there.
      const last = reported.at(-1);
      assert.equal(last?.status?.phase, "Succeeded");
      assert.equal(
        last?.status?.containerStatuses?.[0]?.state?.terminated?.message,
        '{"state":"Shutoff","reason":"Shutdown"}',
      );
      assert.ok(api.peek(refs.pods, "default", pod.metadata.name ?? ""), "held back while the VMI is not final");
      const v = api.peek<VirtualMachineInstance>(refs.vmis, "default", "vm1")!;
      v.status = { ...v.status, phase: "Succeeded" };
      api.put(refs.vmis, v);
      await gone;
      await runner.idle();
      assert.equal(vmiFinalWhenRemoved, "Succeeded");
      assert.deepEqual(await pidsInNetns(podNetns(uid)), []);
    });
  }
});
