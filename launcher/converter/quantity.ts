// resource.Quantity → a number (bytes for memory, cores for CPU): api/ holds the one parser.
export { parseQuantity } from "../../api/index.js";
