import assert from "node:assert/strict";
import { test } from "node:test";
import { consoleSteps, launcherSteps, medianTimeline, timelineTable } from "./timeline.js";

const at = (ms: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, ms)).toISOString();
const line = (msg: string, ms: number): string => JSON.stringify({ level: "info", time: at(ms), msg });

test("launcherSteps: the launcher's lines in ms after wall0, first occurrence, libvirtd's own lines skipped", () => {
  const wall0 = Date.parse(at(0));
  const log = [
    line("launcher starting", 300),
    "2026-01-01 00:00:00.400+0000: 36: error : virCommandWait: something",
    line("libvirtd ready", 800),
    line("launcher ready", 900),
    line("sync received", 1000),
    line("domain defined", 1200),
    line("domain event", 1250),
    line("domain started", 2000),
    line("serial console attached", 2001),
    line("guest output", 2100),
    line("guest output", 2500),
    "{not json",
  ].join("\n");
  assert.deepEqual(launcherSteps(log, wall0), {
    launcher_started: 300,
    libvirtd_ready: 800,
    launcher_ready: 900,
    image_ready: 1000,
    domain_defined: 1200,
    qemu_started: 2000,
    console_attached: 2001,
    guest_output: 2100,
  });
});

test("consoleSteps: the guest's milestones, also when split across chunks", () => {
  const chunks = [
    { at: 110, data: "SYSLINUX\r\n" },
    { at: 150, data: "[    0.000000] Linux ver" },
    { at: 160, data: "sion 6.1\r\n" },
    { at: 400, data: "[    1.2] Run /init as init process\r\n" },
  ];
  assert.deepEqual(consoleSteps(chunks, 100), { kernel_started: 60, init_started: 300 });
});

test("medianTimeline and timelineTable: medians per step, gaps from the previous step of the same column", () => {
  const m = medianTimeline([{ pod_bound: 10, marker: 100 }, { pod_bound: 20, marker: 300 }, { marker: 200 }]);
  assert.deepEqual(m, { pod_bound: 15, marker: 200 });
  const rows = timelineTable(m, { marker: 150 });
  assert.equal(rows.length, 3);
  assert.match(rows[2] ?? "", /marker\s+200\s+\+185\s+150\s*$/);
});
