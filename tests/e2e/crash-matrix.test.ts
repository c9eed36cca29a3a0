// The crash matrix on real QEMU (issue 6, item 6), control-plane half: kill -9 of the API server and of the
// controller at each observed state (launcher pod bound, VMI Scheduled, VMI Running, stop accepted); one test per
// cell. The node half (handler, launcher) is crash-matrix-node.test.ts.
import { crashMatrix } from "./crash-lib.js";

crashMatrix({
  title: "crash matrix (api, controller): kill -9 at states observed through the API",
  name: "crash",
  components: ["api", "controller"],
});
