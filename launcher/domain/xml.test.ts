import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { el, escapeXml, renderXml } from "./xml.js";

describe("renderXml", () => {
  const cases: [string, ReturnType<typeof el>, string][] = [
    ["empty element self-closes", el("acpi"), "<acpi/>\n"],
    [
      "attributes in the given order, undefined dropped",
      el("driver", [
        ["name", "qemu"],
        ["cache", undefined],
        ["type", "raw"],
      ]),
      '<driver name="qemu" type="raw"/>\n',
    ],
    [
      "booleans as yes/no",
      el(
        "loader",
        [
          ["readonly", true],
          ["secure", false],
        ],
        [],
        "/x",
      ),
      '<loader readonly="yes" secure="no">/x</loader>\n',
    ],
    ["text is escaped", el("cmdline", [], [], 'a<b & "c"'), "<cmdline>a&lt;b &amp; &quot;c&quot;</cmdline>\n"],
    [
      "children indented, false skipped",
      el("os", [], [el("type", [], [], "hvm"), false]),
      "<os>\n  <type>hvm</type>\n</os>\n",
    ],
  ];
  for (const [name, node, want] of cases) it(name, () => assert.equal(renderXml(node), want));
  it("escapes attribute quotes", () => assert.equal(escapeXml(`'"<>&`), "&apos;&quot;&lt;&gt;&amp;"));
});
