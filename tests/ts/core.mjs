// The official TypeScript SDK client (legacy era) on berth's core flow:
// connect, list tools, call a tool, read a resource, get a prompt, close.
// Usage: node core.mjs URL TOOL ARGS_JSON ; prints one JSON object.
import path from "node:path";
import { pathToFileURL } from "node:url";

const nm = process.env.BERTH_NODE_MODULES;
const sdk = (p) => import(pathToFileURL(path.join(nm, "@modelcontextprotocol/sdk/dist/esm", p)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const [url, tool, args] = process.argv.slice(2);
const client = new Client({ name: "berth-ts-e2e", version: "1.0.0" }, { capabilities: {} });
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const out = { sessionId: transport.sessionId, server: client.getServerVersion() };
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.call = await client.callTool({ name: tool, arguments: JSON.parse(args) });
const caps = client.getServerCapabilities() ?? {};
if (caps.resources) {
  const res = await client.listResources();
  out.resources = res.resources.map((r) => r.uri);
  if (res.resources.length) out.read = await client.readResource({ uri: res.resources[0].uri });
}
if (caps.prompts) {
  const prompts = await client.listPrompts();
  out.prompts = prompts.prompts.map((p) => p.name);
}
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
