// virtctl unpause vm|vmi NAME [--dry-run]: shares its implementation with pause (see pause.ts).
export { registerUnpause, unpause } from "./pause.js";
