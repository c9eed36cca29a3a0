// storage/upload: the `tsvirt uploadserver` process (CDI's cdi-upload-server: one DataVolume's upload, no API
// access), writing through the importer's sink.
export { jobSink, runUploadServer, runUploadServerCli, uploadSocketPath } from "./main.js";
export {
  type RunningUploadServer,
  startUploadServer,
  UPLOAD_CONNECTION,
  UPLOAD_LISTENING,
  type UploadConnectionMessage,
  type UploadResult,
  type UploadSink,
} from "./server.js";
