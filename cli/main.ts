#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import type { Tracing } from '../src/telemetry/tracing.js';
import { applyStrictBooleanEnv } from './boolean-env-flags.js';
import { isTracedOperation, runTracedOperation } from './command-tracing.js';
import { ExitStatus } from './exit-status.js';
import { tuneMemory } from './memory-tuning.js';
import { usageErrorLine } from './usage-error.js';

tuneMemory();

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('execrelay')
  .description('Run commands and file operations on machines behind NAT, end-to-end encrypted through a rendezvous relay.')
  .version(packageJson.version)
  .enablePositionalOptions()
  // Commander's own errors (unknown option, missing argument) are thrown, not exited with 1, so that
  // they are reported below as one line and exit 255 like every failure of execrelay itself.
  .exitOverride()
  .configureOutput({ outputError: () => undefined });

type Registrar = (program: Command) => void;

/**
 * Each subcommand's module, loaded only when needed: a run of one command loads that command's
 * module alone (a client does not load the relay, the agent or the MCP SDK), `--version` loads
 * none, and the full help (or an unknown command) loads them all to list them.
 */
const COMMAND_MODULES: Record<string, () => Promise<Registrar>> = {
  agent: async () => (await import('./agent-command.js')).registerAgentCommand,
  exec: async () => (await import('./exec-command.js')).registerExecCommand,
  walk: async () => (await import('./fs-commands.js')).registerFsCommands,
  cat: async () => (await import('./fs-commands.js')).registerFsCommands,
  put: async () => (await import('./fs-commands.js')).registerFsCommands,
  cp: async () => (await import('./cp-command.js')).registerCpCommand,
  keygen: async () => (await import('./keygen-command.js')).registerKeygenCommand,
  authorize: async () => (await import('./authorize-command.js')).registerAuthorizeCommand,
  relay: async () => (await import('./relay-command.js')).registerRelayCommand,
  quickstart: async () => (await import('./quickstart-command.js')).registerQuickstartCommand,
  mcp: async () => (await import('./mcp-commands.js')).registerMcpCommands,
  completion: async () => (await import('./completion-command.js')).registerCompletionCommand,
};

/** The registrars the arguments need: the named command's, none for `--version`, else every one. */
async function registrarsFor(args: readonly string[]): Promise<Registrar[]> {
  const first = args.find((arg) => !arg.startsWith('-'));
  const named = first === undefined ? undefined : COMMAND_MODULES[first];
  // `completion` writes a script from the whole command tree: it needs every command.
  if (named && first !== 'completion') return [await named()];
  if (first === undefined && args.some((arg) => arg === '--version' || arg === '-V')) return [];
  const all = await Promise.all(Object.values(COMMAND_MODULES).map((load) => load()));
  return [...new Set(all)];
}

for (const register of await registrarsFor(process.argv.slice(2))) register(program);

// Client commands trace as execrelay-client (when OTEL_EXPORTER_OTLP_* is set): exec, walk, cat,
// put and cp as one trace under a root span `execrelay NAME` (cli/command-tracing.ts), the MCP commands
// per request; the long-running agent and relay set up their own tracing and flush it on their own
// shutdown.
const OWN_TRACING = ['agent', 'relay', 'keygen', 'authorize', 'quickstart'];
const commandName = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
const ownArgs = process.argv.slice(2, process.argv.includes('--') ? process.argv.indexOf('--') : undefined);
const wantsHelp = ownArgs.some((arg) => arg === '--help' || arg === '-h');
const operationTracing = !wantsHelp && isTracedOperation(commandName) ? commandName : undefined;
let clientTracing: Tracing | undefined;
program.hook('preAction', async (_root, actionCommand) => {
  applyStrictBooleanEnv(actionCommand);
  if (OWN_TRACING.includes(actionCommand.name()) || operationTracing) return;
  const { startTracing } = await import('../src/telemetry/tracing.js');
  clientTracing = await startTracing({ serviceName: 'execrelay-client' });
});

try {
  if (operationTracing) await runTracedOperation(operationTracing, () => program.parseAsync(process.argv));
  else await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end here too, with 0; a usage error is one line (with a hint), 255.
    if (error.exitCode === 0) process.exitCode = 0;
    else {
      process.stderr.write(`${usageErrorLine(error, process.argv.slice(2))}\n`);
      process.exitCode = ExitStatus.ExecrelayFailure;
    }
  } else {
    // Expected failures (unreadable files, refused connections) are one clear line, no stack.
    process.stderr.write(`execrelay: ${(error as Error).message}\n`);
    process.exitCode = ExitStatus.ExecrelayFailure;
  }
} finally {
  await clientTracing?.shutdown();
}
