// launcher/domain: the typed libvirt domain and its deterministic XML writer.
export type * from "./spec.js";
export { domainToNode, domainToXml, el, escapeXml, renderXml, type XmlNode } from "./xml.js";
