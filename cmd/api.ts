// `tsvirt api`: the embedded Kubernetes-compatible API server (virt-api in embedded mode).
import type { Command } from "commander";

export function registerApi(program: Command): void {
  program
    .command("api")
    .description("serve the Kubernetes-compatible API (SQLite-backed) and write DIR/kubeconfig")
    .option("--listen <host:port>", "address to listen on (non-loopback needs TLS and a token)", "127.0.0.1:6443")
    .option("--data-dir <dir>", "state directory (SQLite database, kubeconfig)", "/var/lib/tsvirt/api")
    .option("--tls-cert-file <file>", "TLS certificate (PEM)")
    .option("--tls-key-file <file>", "TLS private key (PEM)")
    .option("--token-file <file>", "bearer token every client must present")
    .action(
      async (o: { listen: string; dataDir: string; tlsCertFile?: string; tlsKeyFile?: string; tokenFile?: string }) => {
        const { startApiServer } = await import("../apiserver/index.js");
        const server = await startApiServer({
          listen: o.listen,
          dataDir: o.dataDir,
          ...(o.tlsCertFile ? { tlsCertFile: o.tlsCertFile } : {}),
          ...(o.tlsKeyFile ? { tlsKeyFile: o.tlsKeyFile } : {}),
          ...(o.tokenFile ? { tokenFile: o.tokenFile } : {}),
        });
        const stop = (): void => {
          void server.close().then(() => process.exit(0));
        };
        process.once("SIGTERM", stop);
        process.once("SIGINT", stop);
      },
    );
}
