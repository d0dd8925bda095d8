// An agent whose "model" is a script (no API key): each round it searches, adds a note and
// publishes, through the MCP server its config names. Started by `killpath run --mcp notes=…`,
// the server is the gateway's URL in KILLPATH_MCP_NOTES_URL, so the kill path stands between
// this agent and its tools without a line of killpath code here. Like a model would, it stops
// at the first tool error it reads (a halt, or a tool an operator took away).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

const url = process.env.KILLPATH_MCP_NOTES_URL;
if (!url) {
  console.error('agent: KILLPATH_MCP_NOTES_URL is not set (start me with killpath run --mcp notes=…)');
  process.exit(2);
}
const rounds = Number(process.env.AGENT_ROUNDS ?? 20);
const client = new Client({ name: 'notes-agent', version: '1.0.0' });
client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
  const { tools } = await client.listTools();
  console.log(`agent: tools now ${tools.map((t) => t.name).join(', ')}`);
});
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
console.log(`agent: tools ${(await client.listTools()).tools.map((t) => t.name).join(', ')}`);

const plan = (round) => [
  ['search_notes', { query: 'incident' }],
  ['add_note', { text: `incident note ${round}` }],
  ['publish', {}],
];
let stopped = false;
for (let round = 1; round <= rounds && !stopped; round++) {
  for (const [name, args] of plan(round)) {
    console.log(`agent: round ${round}: calling ${name}`);
    const result = await client.callTool({ name, arguments: args }, undefined, {
      timeout: 600_000,
      onprogress: (p) =>
        console.log(`agent: round ${round}: ${name} progress ${p.progress}/${p.total ?? '?'}`),
    });
    const said = result.content.map((c) => c.text ?? '').join(' ');
    console.log(`agent: round ${round}: ${name} → ${result.isError ? 'error' : 'ok'}: ${said}`);
    if (result.isError) {
      stopped = true;
      break;
    }
  }
}
await transport.terminateSession(); // the gateway ends the session and its server process
await client.close();
