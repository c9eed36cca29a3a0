// For tests of what a process loads (and when): JavaScript that registers a module resolve hook in the process it
// runs in, collecting each resolved URL (tsx's resolution included) in a global array `urls`.

/** The statements to put first in an ES module run with `node --import tsx --input-type=module -e`. */
export function noteLoadedModules(): string {
  const hooks = `let port; export function initialize(d) { port = d.port; }
    export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r; }`;
  return `
    import { register } from "node:module";
    const { port1, port2 } = new MessageChannel();
    const urls = [];
    port1.on("message", (u) => urls.push(u));
    port1.unref();
    register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)}, { data: { port: port2 }, transferList: [port2] });`;
}
