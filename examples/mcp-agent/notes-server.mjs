// A small MCP server for the example: notes in memory. `search_notes` reads, `add_note` writes,
// `publish` is slow (PUBLISH_MS, default 3000) and reports progress; a cancelled call says so on
// stderr. Run it behind killpath's MCP gateway (see README, "MCP: gateway and client").
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { CallToolRequestSchema, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const notes = [];
const publishMs = Number(process.env.PUBLISH_MS ?? 3000);
const server = new Server({ name: 'notes', version: '1.0.0' }, { capabilities: { tools: {} } });
const text = (t) => ({ content: [{ type: 'text', text: t }] });
const schema = (properties) => ({ type: 'object', properties });

server.setRequestHandler(ListToolsRequestSchema, () => ({
  tools: [
    {
      name: 'search_notes',
      description: 'find notes containing a word',
      inputSchema: schema({ query: { type: 'string' } }),
    },
    { name: 'add_note', description: 'add a note', inputSchema: schema({ text: { type: 'string' } }) },
    { name: 'publish', description: 'publish every note (slow)', inputSchema: schema({}) },
  ],
}));

server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
  const args = req.params.arguments ?? {};
  switch (req.params.name) {
    case 'search_notes':
      return text(JSON.stringify(notes.filter((n) => n.includes(String(args.query ?? '')))));
    case 'add_note':
      notes.push(String(args.text ?? ''));
      return text(`${notes.length} notes`);
    case 'publish': {
      const token = req.params._meta?.progressToken;
      if (token !== undefined)
        await extra.sendNotification({
          method: 'notifications/progress',
          params: { progressToken: token, progress: 0, total: 1 },
        });
      const cancelled = await new Promise((ok) => {
        const timer = setTimeout(() => ok(false), publishMs);
        extra.signal.addEventListener('abort', () => (clearTimeout(timer), ok(true)));
      });
      if (cancelled) console.error(`notes-server: publish cancelled by the client: ${extra.signal.reason}`);
      return text(cancelled ? 'cancelled' : `published ${notes.length} notes`);
    }
    default:
      return { isError: true, ...text(`no tool ${req.params.name}`) };
  }
});

process.stdin.on('end', () => process.exit(0));
await server.connect(new StdioServerTransport());
