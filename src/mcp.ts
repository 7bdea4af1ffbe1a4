/**
 * `execrelay/mcp`: MCP servers that only the executor can reach, with OAuth, every HTTP request
 * made from the executor. Separate from the main entry because it loads the MCP SDK.
 */
export * from './client/mcp-through-executor.js';
export { FileOAuthProvider, type FileOAuthProviderOptions } from './client/file-oauth-provider.js';
