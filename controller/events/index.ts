export { EventRecorder, type EventType, nullRecorder, Reasons, type Recorder } from "./recorder.js";
