import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Node, Pod, PodAffinityTerm } from "../../client/index.js";
import { resources } from "../../client/index.js";
import { newNode, newPod, newVmi } from "../testing/factories.js";
import { startHarness } from "../testing/harness.js";
import { type ClusterPods, interPodFit, interPodState } from "./interpod.js";
import { schedule, usageOf } from "./predicates.js";

const HOST = "kubernetes.io/hostname";
const ZONE = "topology.kubernetes.io/zone";

// n1, n2 in zone a; n3 in zone b; n4 has no zone label.
const nodes: Node[] = [
  newNode("n1", { labels: { [ZONE]: "a" } }),
  newNode("n2", { labels: { [ZONE]: "a" } }),
  newNode("n3", { labels: { [ZONE]: "b" } }),
  newNode("n4"),
];
const byName = new Map(nodes.map((n) => [n.metadata.name!, n]));

interface Placed {
  name: string;
  node: string;
  labels?: Record<string, string>;
  namespace?: string;
  affinity?: Pod["spec"]["affinity"];
}

function pod(name: string, labels: Record<string, string> = {}, affinity?: Pod["spec"]["affinity"], ns = "default") {
  const p = newPod(name);
  p.metadata.uid = `uid-${name}`;
  p.metadata.namespace = ns;
  p.metadata.labels = labels;
  if (affinity) p.spec.affinity = affinity;
  return p;
}

function cluster(placed: Placed[], nsLabels: Record<string, Record<string, string>> = {}): ClusterPods {
  const list = placed.map((p) => ({ pod: pod(p.name, p.labels, p.affinity, p.namespace), node: p.node }));
  return { placed: () => list, namespaceLabels: (ns) => nsLabels[ns] };
}

const term = (match: Record<string, string>, topologyKey: string, extra: Partial<PodAffinityTerm> = {}) => ({
  labelSelector: { matchLabels: match },
  topologyKey,
  ...extra,
});

const antiAffinity = (...terms: PodAffinityTerm[]) => ({
  podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms },
});
const affinity = (...terms: PodAffinityTerm[]) => ({
  podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms },
});

function feasible(incoming: Pod, c: ClusterPods): string[] {
  const s = interPodState(incoming, byName, c);
  return nodes.filter((n) => interPodFit(n, s) === undefined).map((n) => n.metadata.name!);
}

describe("inter-pod affinity and anti-affinity (required terms)", () => {
  const web = [{ name: "w1", node: "n1", labels: { app: "web" } }];
  const table: {
    name: string;
    incoming: Pod;
    placed: Placed[];
    nsLabels?: Record<string, Record<string, string>>;
    want: string[];
  }[] = [
    {
      name: "anti-affinity on hostname keeps off the node of a matching pod",
      incoming: pod("p", { app: "web" }, antiAffinity(term({ app: "web" }, HOST))),
      placed: web,
      want: ["n2", "n3", "n4"],
    },
    {
      name: "anti-affinity on a zone keeps off the whole zone; a node without the label is fine",
      incoming: pod("p", {}, antiAffinity(term({ app: "web" }, ZONE))),
      placed: web,
      want: ["n3", "n4"],
    },
    {
      name: "anti-affinity with no matching pod anywhere: every node",
      incoming: pod("p", {}, antiAffinity(term({ app: "db" }, HOST))),
      placed: web,
      want: ["n1", "n2", "n3", "n4"],
    },
    {
      name: "affinity on a zone: only the zone of a matching pod (nodes lacking the label never fit)",
      incoming: pod("p", {}, affinity(term({ app: "db" }, ZONE))),
      placed: [{ name: "d1", node: "n3", labels: { app: "db" } }],
      want: ["n3"],
    },
    {
      name: "affinity on hostname: the node of the matching pod",
      incoming: pod("p", {}, affinity(term({ app: "web" }, HOST))),
      placed: web,
      want: ["n1"],
    },
    {
      name: "affinity with matchExpressions In",
      incoming: pod(
        "p",
        {},
        affinity({
          labelSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["db", "cache"] }] },
          topologyKey: ZONE,
        }),
      ),
      placed: [...web, { name: "c1", node: "n2", labels: { app: "cache" } }],
      want: ["n1", "n2"],
    },
    {
      name: "affinity, no matching pod yet, the pod matches its own term: the first of its group goes anywhere labelled",
      incoming: pod("p", { app: "grp" }, affinity(term({ app: "grp" }, ZONE))),
      placed: web,
      want: ["n1", "n2", "n3"],
    },
    {
      name: "affinity, no matching pod, the pod does not match its own term: nowhere",
      incoming: pod("p", {}, affinity(term({ app: "db" }, ZONE))),
      placed: web,
      want: [],
    },
    {
      name: "all affinity terms must be matched by one pod",
      incoming: pod("p", {}, affinity(term({ app: "web" }, HOST), term({ tier: "front" }, HOST))),
      placed: [...web, { name: "f1", node: "n2", labels: { app: "web", tier: "front" } }],
      want: ["n2"],
    },
    {
      name: "terms default to the pod's own namespace: a pod in another namespace does not count",
      incoming: pod("p", {}, antiAffinity(term({ app: "web" }, HOST))),
      placed: [{ name: "o1", node: "n1", labels: { app: "web" }, namespace: "other" }],
      want: ["n1", "n2", "n3", "n4"],
    },
    {
      name: "namespaces lists where to look",
      incoming: pod("p", {}, antiAffinity(term({ app: "web" }, HOST, { namespaces: ["other"] }))),
      placed: [
        { name: "o1", node: "n1", labels: { app: "web" }, namespace: "other" },
        { name: "d1", node: "n2", labels: { app: "web" } },
      ],
      want: ["n2", "n3", "n4"],
    },
    {
      name: "namespaceSelector selects namespaces by their labels",
      incoming: pod(
        "p",
        {},
        antiAffinity(term({ app: "web" }, HOST, { namespaceSelector: { matchLabels: { team: "x" } } })),
      ),
      placed: [
        { name: "o1", node: "n1", labels: { app: "web" }, namespace: "tx" },
        { name: "o2", node: "n2", labels: { app: "web" }, namespace: "ty" },
      ],
      nsLabels: { tx: { team: "x" }, ty: { team: "y" } },
      want: ["n2", "n3", "n4"],
    },
    {
      name: "an empty namespaceSelector selects every namespace",
      incoming: pod("p", {}, antiAffinity(term({ app: "web" }, HOST, { namespaceSelector: {} }))),
      placed: [
        { name: "o1", node: "n1", labels: { app: "web" }, namespace: "tx" },
        { name: "o2", node: "n3", labels: { app: "web" }, namespace: "ty" },
      ],
      want: ["n2", "n4"],
    },
    {
      name: "symmetry: an existing pod's required anti-affinity repels a matching incoming pod",
      incoming: pod("p", { app: "web" }),
      placed: [{ name: "x1", node: "n2", labels: { app: "x" }, affinity: antiAffinity(term({ app: "web" }, ZONE)) }],
      want: ["n3", "n4"],
    },
    {
      name: "symmetry ignores an existing pod's anti-affinity that does not match the incoming pod",
      incoming: pod("p", { app: "db" }),
      placed: [{ name: "x1", node: "n2", labels: { app: "x" }, affinity: antiAffinity(term({ app: "web" }, ZONE)) }],
      want: ["n1", "n2", "n3", "n4"],
    },
    {
      name: "a null labelSelector selects nothing",
      incoming: pod("p", {}, antiAffinity({ topologyKey: HOST })),
      placed: web,
      want: ["n1", "n2", "n3", "n4"],
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      assert.deepEqual(feasible(c.incoming, cluster(c.placed, c.nsLabels)), c.want);
    });
  }

  it("reports kube-scheduler's reasons", () => {
    const two = nodes.slice(0, 2);
    const anti = pod("p", { app: "web" }, antiAffinity(term({ app: "web" }, ZONE)));
    assert.deepEqual(
      schedule(anti, two, () => usageOf([]), undefined, { cluster: cluster(web) }),
      { fit: false, message: "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules." },
    );
    const aff = pod("p", {}, affinity(term({ app: "db" }, HOST)));
    assert.deepEqual(
      schedule(aff, two, () => usageOf([]), undefined, { cluster: cluster(web) }),
      { fit: false, message: "0/2 nodes are available: 2 node(s) didn't match pod affinity rules." },
    );
    const sym = [{ name: "x1", node: "n1", labels: {}, affinity: antiAffinity(term({ app: "web" }, ZONE)) }];
    assert.deepEqual(
      schedule(pod("p", { app: "web" }), two, () => usageOf([]), undefined, { cluster: cluster(sym) }),
      { fit: false, message: "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules." },
    );
  });
});

describe("inter-pod affinity and anti-affinity (preferred terms rank nodes)", () => {
  const pick = (incoming: Pod, placed: Placed[]) =>
    schedule(incoming, nodes, () => usageOf([]), undefined, { cluster: cluster(placed) });
  const table: { name: string; incoming: Pod; placed: Placed[]; want: string }[] = [
    {
      name: "preferred affinity draws towards the matching pod's zone",
      incoming: pod(
        "p",
        {},
        {
          podAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 50, podAffinityTerm: term({ app: "db" }, ZONE) },
            ],
          },
        },
      ),
      placed: [{ name: "d1", node: "n3", labels: { app: "db" } }],
      want: "n3",
    },
    {
      name: "the heavier of two preferred terms wins",
      incoming: pod(
        "p",
        {},
        {
          podAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 10, podAffinityTerm: term({ app: "a" }, HOST) },
              { weight: 80, podAffinityTerm: term({ app: "b" }, HOST) },
            ],
          },
        },
      ),
      placed: [
        { name: "a1", node: "n2", labels: { app: "a" } },
        { name: "b1", node: "n4", labels: { app: "b" } },
      ],
      want: "n4",
    },
    {
      name: "preferred anti-affinity pushes away from the matching pod's zone",
      incoming: pod(
        "p",
        {},
        {
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [
              { weight: 100, podAffinityTerm: term({ app: "web" }, ZONE) },
            ],
          },
        },
      ),
      // Without the term n1 would win the tie (name order); zone a (n1, n2) is repelled.
      placed: [{ name: "w1", node: "n2", labels: { app: "web" } }],
      want: "n3",
    },
    {
      name: "symmetry: an existing pod's preferred affinity for the incoming pod draws it near",
      incoming: pod("p", { app: "web" }),
      placed: [
        {
          name: "x1",
          node: "n3",
          labels: {},
          affinity: {
            podAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 30, podAffinityTerm: term({ app: "web" }, HOST) },
              ],
            },
          },
        },
      ],
      want: "n3",
    },
    {
      name: "symmetry: an existing pod's required affinity for the incoming pod counts with weight 1",
      incoming: pod("p", { app: "web" }),
      placed: [{ name: "x1", node: "n2", labels: {}, affinity: affinity(term({ app: "web" }, HOST)) }],
      want: "n2",
    },
  ];
  for (const c of table) {
    it(c.name, () => {
      assert.deepEqual(pick(c.incoming, c.placed), { fit: true, node: c.want });
    });
  }
});

describe("the scheduler applies pod anti-affinity to pods it has just bound", () => {
  it("a burst of three pods with required anti-affinity on hostname lands on three nodes; a fourth waits", async (t) => {
    const h = await startHarness([{ ref: resources.nodes, objs: [newNode("a"), newNode("b"), newNode("c")] }]);
    t.after(() => h.stop());
    for (let i = 0; i < 4; i++) {
      await h.client.create(
        resources.pods,
        "default",
        pod(`p${i}`, { app: "spread" }, antiAffinity(term({ app: "spread" }, HOST))),
      );
    }
    await h.drain();
    const all = h.client.all<Pod>(resources.pods);
    const bound = all.filter((p) => p.spec.nodeName).map((p) => p.spec.nodeName);
    assert.deepEqual([...bound].sort(), ["a", "b", "c"]);
    const waiting = all.find((p) => !p.spec.nodeName);
    assert.equal(
      waiting?.status?.conditions?.find((c) => c.type === "PodScheduled")?.message,
      // Each placed pod's own anti-affinity repels it first (kube checks the existing pods' rules first).
      "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules.",
    );
  });

  it("a finished pod no longer repels; a terminating one still does", async (t) => {
    const done = pod("done", { app: "x" }, undefined);
    done.spec.nodeName = "a";
    done.status = { phase: "Succeeded" };
    const going = pod("going", { app: "x" }, undefined);
    going.spec.nodeName = "b";
    going.status = { phase: "Running" };
    going.metadata.deletionTimestamp = "2026-01-01T00:00:00Z";
    const h = await startHarness([
      { ref: resources.nodes, objs: [newNode("a"), newNode("b")] },
      { ref: resources.pods, objs: [done, going] },
    ]);
    t.after(() => h.stop());
    await h.client.create(resources.pods, "default", pod("p", {}, antiAffinity(term({ app: "x" }, HOST))));
    await h.drain();
    assert.equal(h.client.peek<Pod>(resources.pods, "default", "p")?.spec.nodeName, "a");
  });
});

describe("VMIs select each other through their launcher pods", () => {
  it("the launcher pod carries the VMI's labels and affinity; anti-affine VMIs land on different nodes", async (t) => {
    const h = await startHarness([{ ref: resources.nodes, objs: [newNode("node01"), newNode("node02")] }]);
    t.after(() => h.stop());
    const aff = antiAffinity(term({ app: "db" }, HOST));
    for (const name of ["db1", "db2"]) {
      const vmi = newVmi(name);
      vmi.metadata.labels = { app: "db" };
      vmi.spec.affinity = structuredClone(aff);
      await h.client.create(resources.vmis, "default", vmi);
    }
    await h.drain();
    const pods = h.client.all<Pod>(resources.pods);
    assert.equal(pods.length, 2);
    for (const p of pods) {
      assert.equal(p.metadata.labels?.app, "db");
      assert.deepEqual(p.spec.affinity, aff);
    }
    assert.deepEqual(pods.map((p) => p.spec.nodeName).sort(), ["node01", "node02"]);
  });
});
