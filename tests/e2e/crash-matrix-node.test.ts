// The crash matrix on real QEMU (issue 6, item 6), node half: kill -9 of the node agent (virt-handler) and of the
// VM's launcher at each observed state (launcher pod bound, VMI Scheduled, VMI Running, stop accepted); one test
// per cell. The control-plane half (api, controller) is crash-matrix.test.ts.
import { crashMatrix } from "./crash-lib.js";

crashMatrix({
  title: "crash matrix (handler, launcher): kill -9 at states observed through the API",
  name: "crashn",
  components: ["handler", "launcher"],
});
