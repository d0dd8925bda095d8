export { mcpCapability, toolClass, parseToolClasses } from './capability.ts';
export type { ToolClasses } from './capability.ts';
export { gateMcpClient } from './gated-client.ts';
export type { GatedMcpClient, GatedClientOptions, GatedCallOptions } from './gated-client.ts';
export { hidesTool, refusalResult, isRefusal } from './refusal.ts';
