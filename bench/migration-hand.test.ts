import assert from "node:assert/strict";
import { test } from "node:test";
import { copiedDisks, moveDomainXml, parseJobInfo, sourceFiles } from "./migration-hand.js";

const XML = `<domain type='qemu'><name>default_vm</name><devices>
<disk type='file' device='disk'><source file='/d/pods/abc/qemu/disks/cd/overlay.qcow2' index='2'/>
<backingStore type='file'><source file='/d/images/base.qcow2'/></backingStore></disk>
<interface type='ethernet'><target dev='tap0'/><model type='virtio'/></interface>
<serial type='unix'><source mode='bind' path='/d/pods/abc/qemu/serial0'/></serial></devices></domain>`;

test("the domain moves below the side's directory; its tap interface is dropped; outside paths stay", () => {
  const x = moveDomainXml(XML, "/d/pods/abc", "/w/a/pod");
  assert.match(x, /\/w\/a\/pod\/qemu\/disks\/cd\/overlay\.qcow2/);
  assert.match(x, /\/w\/a\/pod\/qemu\/serial0/);
  assert.match(x, /\/d\/images\/base\.qcow2/);
  assert.doesNotMatch(x, /interface/);
  assert.deepEqual(sourceFiles(XML), ["/d/pods/abc/qemu/disks/cd/overlay.qcow2", "/d/images/base.qcow2"]);
});

test("virsh domjobinfo --completed: downtime and elapsed time", () => {
  const text =
    "Job type:         Completed\nOperation:        Outgoing migration\nTime elapsed:     3377         ms\nTotal downtime:   42           ms\n";
  assert.deepEqual(parseJobInfo(text), { downtimeMs: 42, totalMs: 3377 });
  assert.deepEqual(parseJobInfo(""), {});
});

test("the copied disks: writable disks below the pod dir (not the backing file, not a read-only one)", () => {
  const xml = `${XML.replace("</devices>", "")}<disk type='file' device='disk'><source file='/d/pods/abc/disks/data.qcow2'/><target dev='vdb' bus='virtio'/></disk>
<disk type='file' device='cdrom'><source file='/d/pods/abc/cloudinit.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
<disk type='file' device='disk'><source file='/d/nodes/n1/volumes/pv1/disk.img'/><target dev='vdc' bus='virtio'/></disk></devices></domain>`;
  assert.deepEqual(copiedDisks(xml, "/d/pods/abc"), [{ target: "vdb", file: "/d/pods/abc/disks/data.qcow2" }]);
  assert.deepEqual(copiedDisks(xml, "/d/nodes/n1/volumes/pv1"), [
    { target: "vdc", file: "/d/nodes/n1/volumes/pv1/disk.img" },
  ]);
});
