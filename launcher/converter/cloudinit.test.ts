import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, it } from "node:test";
import { promisify } from "node:util";
import type { Volume } from "../../api/index.js";
import { isStatusError } from "../../lib/errors.js";
import { requirePrereqs } from "../../tests/lib/prereqs.js";
import { buildIso, configDriveFiles, noCloudFiles, safeRelativePath } from "./cloudinit.js";
import { newVmi } from "./testutil.js";

const run = promisify(execFile);

describe("noCloudFiles", () => {
  const vmi = newVmi();
  const cases: { name: string; vol: Volume; want: Record<string, string | undefined> }[] = [
    {
      name: "inline user data",
      vol: { name: "ci", cloudInitNoCloud: { userData: "#cloud-config\npassword: x\n" } },
      want: { "user-data": "#cloud-config\npassword: x\n", "network-config": undefined },
    },
    {
      name: "base64 user and network data",
      vol: {
        name: "ci",
        cloudInitNoCloud: {
          userDataBase64: Buffer.from("#!/bin/sh\necho hi\n").toString("base64"),
          networkDataBase64: Buffer.from("version: 2\n").toString("base64"),
        },
      },
      want: { "user-data": "#!/bin/sh\necho hi\n", "network-config": "version: 2\n" },
    },
    {
      name: "network data inline",
      vol: { name: "ci", cloudInitNoCloud: { userData: "", networkData: "version: 2\nethernets: {}\n" } },
      want: { "user-data": "", "network-config": "version: 2\nethernets: {}\n" },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = noCloudFiles(vmi, c.vol);
      assert.equal(f["meta-data"], "instance-id: testvmi.ns\nlocal-hostname: testvmi\n");
      assert.equal(f["user-data"], c.want["user-data"]);
      assert.equal(f["network-config"], c.want["network-config"]);
    });
  }
  it("a secret reference needs the resolved secret", () => {
    const vol: Volume = { name: "ci", cloudInitNoCloud: { secretRef: { name: "s" } } };
    assert.throws(
      () => noCloudFiles(vmi, vol),
      (e: unknown) => isStatusError(e) && e.status.code === 422,
    );
    assert.equal(noCloudFiles(vmi, vol, { userData: "from-secret" })["user-data"], "from-secret");
  });
});

describe("configDriveFiles", () => {
  it("writes OpenStack's meta_data.json, user_data and network_data.json", () => {
    const vmi = newVmi({ hostname: "h1" });
    const f = configDriveFiles(vmi, {
      name: "cd",
      cloudInitConfigDrive: { userData: "#cloud-config\n", networkData: "{}" },
    });
    assert.deepEqual(Object.keys(f).sort(), [
      "openstack/latest/meta_data.json",
      "openstack/latest/network_data.json",
      "openstack/latest/user_data",
    ]);
    assert.deepEqual(JSON.parse(f["openstack/latest/meta_data.json"] ?? ""), {
      instance_id: "testvmi.ns",
      uuid: vmi.metadata?.uid,
      hostname: "h1",
    });
    assert.equal(f["openstack/latest/user_data"], "#cloud-config\n");
  });
});

describe("safeRelativePath", () => {
  for (const [p, ok] of [
    ["a", true],
    ["a/b.txt", true],
    ["", false],
    ["/etc/passwd", false],
    ["../x", false],
    ["a/../../x", false],
    ["a//b", false],
    ["./a", false],
  ] as const) {
    it(`${JSON.stringify(p)} → ${ok}`, () => assert.equal(safeRelativePath(p), ok));
  }
});

describe("buildIso", () => {
  beforeEach(() => requirePrereqs("xorriso"));
  it("writes an ISO labelled cidata holding the files", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvirt-ci-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const iso = join(dir, "noCloud.iso");
    await buildIso(
      { "meta-data": "instance-id: a.b\n", "user-data": "#cloud-config\n", "network-config": "version: 2\n" },
      "cidata",
      iso,
    );
    const img = readFileSync(iso);
    // ISO 9660 primary volume descriptor at 32 KiB: "CD001", volume id at offset 40.
    assert.equal(img.subarray(32768 + 1, 32768 + 6).toString("latin1"), "CD001");
    assert.equal(
      img
        .subarray(32768 + 40, 32768 + 72)
        .toString("latin1")
        .trim(),
      "cidata",
    );
    const { stdout } = await run("xorriso", ["-indev", iso, "-ls", "/"], { maxBuffer: 1 << 20 });
    for (const f of ["meta-data", "user-data", "network-config"]) assert.match(stdout, new RegExp(`'${f}'`));
    const { stdout: ud } = await run("xorriso", [
      "-indev",
      iso,
      "-osirrox",
      "on",
      "-extract",
      "/user-data",
      join(dir, "ud"),
    ]).then(() => ({ stdout: readFileSync(join(dir, "ud"), "utf8") }));
    assert.equal(ud, "#cloud-config\n");
  });
});
