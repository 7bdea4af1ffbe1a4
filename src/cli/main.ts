#!/usr/bin/env node
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerAgentCommand } from './agent-command.js';
import { registerExecCommand } from './exec-command.js';
import { registerFsCommands } from './fs-commands.js';
import { registerKeygenCommand } from './keygen-command.js';
import { registerRelayCommand } from './relay-command.js';
import { registerQuickstartCommand } from './quickstart-command.js';
import { registerMcpCommands } from './mcp-commands.js';
import { startTracing, type Tracing } from '../telemetry/tracing.js';

const packageJson = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('execrelay')
  .description('Run commands and file operations on machines behind NAT, end-to-end encrypted through a rendezvous relay.')
  .version(packageJson.version)
  .showHelpAfterError()
  .enablePositionalOptions();

registerAgentCommand(program);
registerExecCommand(program);
registerFsCommands(program);
registerKeygenCommand(program);
registerRelayCommand(program);
registerQuickstartCommand(program);
registerMcpCommands(program);

// Client commands trace as execrelay-client (when OTEL_EXPORTER_OTLP_* is set); the long-running
// agent and relay set up their own tracing and flush it on their own shutdown.
let clientTracing: Tracing | undefined;
program.hook('preAction', async (_root, actionCommand) => {
  if (!['agent', 'relay', 'keygen', 'quickstart'].includes(actionCommand.name())) clientTracing = await startTracing({ serviceName: 'execrelay-client' });
});

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // Expected failures (bad flags, unreadable files, refused connections) are one clear line, no stack.
  process.stderr.write(`execrelay: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await clientTracing?.shutdown();
}
