// A fake losetup for unit tests (the node library's and the node agent's): attached devices in a map, the argv
// shapes storage/node/volumes.ts runs. loop.test.ts drives the real one under the lock.
import { statSync } from "node:fs";
import type { Exec } from "./volumes.js";

export interface FakeLosetup {
  exec: Exec;
  /** device → backing file (a test may add foreign or "(deleted)" entries). */
  attached: Map<string, string>;
  /** device → the size it was attached or last `--set-capacity`'d at (what `blockdev --getsize64` prints). */
  sizes: Map<string, number>;
  calls: string[][];
}

export function fakeLosetup(firstMinor = 10): FakeLosetup {
  const attached = new Map<string, string>();
  const calls: string[][] = [];
  const sizes = new Map<string, number>();
  const fileSize = (f: string | undefined) => {
    try {
      return f ? statSync(f).size : 0;
    } catch {
      return 0;
    }
  };
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    if (file === "blockdev") return `${sizes.get(args[1] as string) ?? 0}\n`;
    if (args[0] === "--set-capacity") sizes.set(args[1] as string, fileSize(attached.get(args[1] as string)));
    if (args[0] === "-j") {
      return [...attached]
        .filter(([, f]) => f === args[1])
        .map(([d, f]) => `${d}: [2049]:12 (${f})\n`)
        .join("");
    }
    if (args[0] === "--find") {
      const dev = `/dev/loop${attached.size + firstMinor}`;
      attached.set(dev, args.at(-1) as string);
      sizes.set(dev, fileSize(args.at(-1)));
      return `${dev}\n`;
    }
    if (args[0] === "--detach") attached.delete(args[1] as string);
    if (args[0] === "--list") {
      return JSON.stringify({ loopdevices: [...attached].map(([name, f]) => ({ name, "back-file": f })) });
    }
    return "";
  };
  return { exec, attached, sizes, calls };
}
