import { Option, type Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createIdentityFile, loadIdentityFile } from '../src/noise/identity.js';
import { DEFAULT_CLIENT_HYBRID_KEY_DISPLAY, DEFAULT_CLIENT_KEY_DISPLAY, defaultClientHybridKeyPath, defaultClientKeyPath } from './client-key-path.js';
import { ExitStatus } from './exit-status.js';

/** What `execrelay keygen` was asked to do. */
export interface KeygenRequest {
  /** Create a new key file here. */
  out?: string;
  /** Print the public identity of this existing key file. */
  show?: string;
  /** With neither: where this user's client key goes (default: {@link defaultClientKeyPath}, or {@link defaultClientHybridKeyPath} with `hybrid`). */
  clientKeyPath?: string;
  /** A hybrid key (X25519 + ML-KEM-768) for codex-protocol environments instead of an Ed25519 identity; prints its `hyb1:` fingerprint. */
  hybrid?: boolean;
}

/** Where `runKeygen` writes: stdout gets only the public identity, stderr gets errors. */
export interface KeygenOutput {
  writeOut(text: string): void;
  writeErr(text: string): void;
}

/**
 * Runs `execrelay keygen`: with `out`, creates a new Ed25519 key file (mode 0600, never overwrites,
 * the parent directory must exist); with `show`, loads an existing one; with neither, creates this
 * user's client key (the default of client commands' `--key`), making its directory with mode 0700
 * if needed. Prints only the public identity and a newline on stdout (what was created on stderr).
 * Returns the exit code (0, or 1 after writing the error to stderr).
 */
export async function runKeygen(request: KeygenRequest, output: KeygenOutput): Promise<number> {
  if (request.hybrid === true) return runHybridKeygen(request, output);
  const clientKey = request.show === undefined && request.out === undefined ? (request.clientKeyPath ?? defaultClientKeyPath()) : undefined;
  try {
    let identity;
    if (request.show !== undefined) identity = await loadIdentityFile(request.show);
    else if (request.out !== undefined) identity = await createIdentityFile(request.out);
    else {
      await mkdir(path.dirname(clientKey!), { recursive: true, mode: 0o700 });
      identity = await createIdentityFile(clientKey!);
      output.writeErr(
        `execrelay keygen: created this client's key ${clientKey}; an agent serves it once its operator runs: ` +
          `execrelay authorize --authorized-clients FILE ${identity.publicIdentity}\n`,
      );
    }
    output.writeOut(`${identity.publicIdentity}\n`);
    return 0;
  } catch (error) {
    const hint = clientKey === undefined ? '' : ` (its public identity: execrelay keygen --show ${clientKey})`;
    output.writeErr(`execrelay keygen: ${(error as Error).message}${hint}\n`);
    return ExitStatus.ExecrelayFailure;
  }
}

/**
 * `execrelay keygen --hybrid`: the same three forms for a hybrid key file (`src/noise-hybrid/hybrid-key-file.ts`);
 * stdout gets only the key's `hyb1:` fingerprint. Loaded only when asked for (ML-KEM).
 */
async function runHybridKeygen(request: KeygenRequest, output: KeygenOutput): Promise<number> {
  const { createHybridKeyFile, loadHybridKeyFile } = await import('../src/noise-hybrid/hybrid-key-file.js');
  const { hybridFingerprint } = await import('../src/noise-hybrid/hybrid-fingerprint.js');
  const clientKey = request.show === undefined && request.out === undefined ? (request.clientKeyPath ?? defaultClientHybridKeyPath()) : undefined;
  try {
    let keyPair;
    if (request.show !== undefined) keyPair = await loadHybridKeyFile(request.show);
    else if (request.out !== undefined) keyPair = await createHybridKeyFile(request.out);
    else {
      await mkdir(path.dirname(clientKey!), { recursive: true, mode: 0o700 });
      keyPair = await createHybridKeyFile(clientKey!);
      output.writeErr(`execrelay keygen: created this client's hybrid key ${clientKey} (for codex environments: exec --accept-relay-key or --agent-key hyb1:...)\n`);
    }
    output.writeOut(`${hybridFingerprint(keyPair.publicKey)}\n`);
    return 0;
  } catch (error) {
    const hint = clientKey === undefined ? '' : ` (its fingerprint: execrelay keygen --hybrid --show ${clientKey})`;
    output.writeErr(`execrelay keygen: ${(error as Error).message}${hint}\n`);
    return ExitStatus.ExecrelayFailure;
  }
}

/**
 * Adds `execrelay keygen --out FILE` / `execrelay keygen --show FILE` to `program`. Output goes
 * through the command's commander output configuration (stdout/stderr by default), and a failure sets
 * `process.exitCode = 255`. The action is async: parse with `parseAsync`.
 */
export function registerKeygenCommand(program: Command): Command {
  const keygen = program
    .command('keygen')
    .description('create an Ed25519 identity key file and print its public identity')
    .addOption(
      new Option(
        '--out <file>',
        `create a new key file here (mode 0600; an existing file is never overwritten; the directory must exist). Without --out or --show: this client's key, ${DEFAULT_CLIENT_KEY_DISPLAY} (under $XDG_CONFIG_HOME if set; its directory is created with mode 0700)`,
      ).env('EXECRELAY_KEY_OUT'),
    )
    .addOption(new Option('--show <file>', 'print the public identity of an existing key file instead of creating one'))
    .addOption(
      new Option(
        '--hybrid',
        `a hybrid key (X25519 + ML-KEM-768) for reaching codex executors (codex exec-server --remote) through a relay; prints its hyb1: fingerprint. Without --out or --show: ${DEFAULT_CLIENT_HYBRID_KEY_DISPLAY}`,
      ),
    )
    .addHelpText(
      'after',
      `
Prints only the public identity (a libp2p peer id, 12D3KooW...) on stdout. Give the agent's identity to
clients (their known environments file: "ENVIRONMENT_ID PUBLIC_IDENTITY" per line) and a client's
identity to the agent's operator, who adds it to the agent's authorized clients file (one identity per
line) with: execrelay authorize --authorized-clients FILE IDENTITY. Errors go to stderr, exit 1.

  execrelay keygen                      create this client's key (${DEFAULT_CLIENT_KEY_DISPLAY})
  execrelay keygen --out agent.key      create an agent's key
  execrelay keygen --show FILE          print the public identity of an existing key
  execrelay keygen --hybrid             create this client's hybrid key (${DEFAULT_CLIENT_HYBRID_KEY_DISPLAY}),
                                        used towards codex executors; prints its hyb1: fingerprint

The key file is JSON: {"type":"execrelay-identity","version":1,"keyType":"Ed25519",
"publicIdentity":"12D3KooW...","privateKey":"<base64 libp2p private key protobuf>"}. Keep it private:
a key file readable by group or others is refused when loaded.`,
    )
    .action(async (options: KeygenRequest, command: Command) => {
      const outFromCommandLine = options.out !== undefined && command.getOptionValueSource('out') === 'cli';
      if (options.show !== undefined && outFromCommandLine) {
        command.error('execrelay keygen: use either --out or --show, not both');
      }
      const base: KeygenRequest = options.show !== undefined ? { show: options.show } : { ...(options.out === undefined ? {} : { out: options.out }) };
      const request: KeygenRequest = options.hybrid === true ? { ...base, hybrid: true } : base;
      const configured = command.configureOutput();
      const exitCode = await runKeygen(request, {
        writeOut: (text) => (configured.writeOut ? configured.writeOut(text) : process.stdout.write(text)),
        writeErr: (text) => (configured.writeErr ? configured.writeErr(text) : process.stderr.write(text)),
      });
      if (exitCode !== 0) process.exitCode = exitCode;
    });
  return keygen;
}
