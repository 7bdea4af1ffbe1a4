import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_PATH, runCli, startCli } from '../support/cli.js';

const DEPLOY_MD = readFileSync(fileURLToPath(new URL('../../docs/deploy.md', import.meta.url)), 'utf8');

/** The ```sh blocks of docs/deploy.md whose text contains `marker`. */
function shBlock(marker: string): string {
  const blocks = [...DEPLOY_MD.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => b.includes(marker));
  if (!block) throw new Error(`no sh block of docs/deploy.md contains ${marker}`);
  return block;
}

/** The lines of a block that start with one of `prefixes` (with their continuation lines). */
function commands(block: string, ...prefixes: string[]): string[] {
  return block.split('\n').filter((line) => prefixes.some((p) => line.startsWith(p)));
}

/**
 * The commands of docs/deploy.md that need no root, systemd or package install, run as written with
 * /etc paths moved into a temporary directory: the relay host's token files, the agent host's key,
 * token and authorized clients, the client's exec. A relay and an agent then run on those files.
 */
describe('docs/deploy.md commands', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-deploy-doc-'));
  const etc = path.join(dir, 'etc');
  const bin = path.join(dir, 'bin');
  const started: Array<Awaited<ReturnType<typeof startCli>>> = [];
  afterAll(async () => {
    for (const cli of started.reverse()) await cli.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  // `execrelay` on the PATH is the CLI built in this checkout.
  mkdirSync(bin);
  writeFileSync(path.join(bin, 'execrelay'), `#!/bin/sh\nexec "${process.execPath}" "${CLI_PATH}" "$@"\n`);
  chmodSync(path.join(bin, 'execrelay'), 0o755);
  mkdirSync(path.join(etc, 'execrelay'), { recursive: true });
  mkdirSync(path.join(etc, 'execrelay-agent'), { recursive: true });
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, EXECRELAY_LOG_LEVEL: 'warn' };
  const sh = (script: string) => execFileSync('sh', ['-c', script.replaceAll('/etc/', `${etc}/`)], { cwd: dir, env, encoding: 'utf8' });

  it('makes the token files, agent key and authorized clients as written, and they work', async () => {
    // Relay host: the token snippet (a subshell spanning several lines).
    const relayBlock = shBlock('relay-tokens');
    const tokenSnippet = relayBlock.slice(relayBlock.indexOf('(umask 077'), relayBlock.indexOf('hand these to'));
    sh(tokenSnippet.replace(/#.*$/, ''));
    const tokens = readFileSync(path.join(etc, 'execrelay/relay-tokens'), 'utf8').trim().split('\n');
    expect(tokens.map((line) => line.split(' ').slice(1).join(' '))).toEqual(['executor build-*', 'client build-*']);
    for (const file of [path.join(etc, 'execrelay/relay-tokens'), path.join(dir, 'agent.token'), path.join(dir, 'client.token')]) {
      expect(statSync(file).mode & 0o077).toBe(0);
    }

    // Agent host: keygen, the token, the authorized client (the client's identity from its own keygen).
    const clientIdentity = (await runCli(['keygen', '--out', path.join(dir, 'client.key')])).stdout.trim();
    const agentBlock = shBlock('execrelay keygen --out /etc/execrelay-agent/agent.key');
    const [keygen] = commands(agentBlock, 'execrelay keygen');
    const agentIdentity = sh(keygen!.replace(/#.*$/, '')).trim();
    expect(agentIdentity).toMatch(/^12D3KooW/);
    for (const line of commands(agentBlock, 'install -m 0600 agent.token', 'execrelay authorize')) {
      sh(line.replace(/#.*$/, '').replace('12D3KooW…', clientIdentity));
    }

    // The services, on exactly those files (the units' variables), and the client's command.
    const relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', path.join(etc, 'execrelay/relay-tokens')], { EXECRELAY_LOG_LEVEL: 'warn' });
    started.push(relay);
    const agent = await startCli(['agent'], {
      EXECRELAY_LOG_LEVEL: 'warn',
      EXECRELAY_RELAY: relay.firstLine,
      EXECRELAY_ENVIRONMENT_ID: 'build-host-1',
      EXECRELAY_KEY: path.join(etc, 'execrelay-agent/agent.key'),
      EXECRELAY_TOKEN_FILE: path.join(etc, 'execrelay-agent/relay-token'),
      EXECRELAY_AUTHORIZED_CLIENTS: path.join(etc, 'execrelay-agent/authorized-clients'),
    });
    started.push(agent);
    expect(agent.firstLine).toBe(agentIdentity);
    const [exec] = commands(shBlock('--env build-host-1'), 'execrelay exec');
    const result = await runCli(
      exec!
        .replace('wss://relay.example.com', relay.firstLine)
        .replace('12D3KooW…', agentIdentity)
        .replace('client.token', path.join(dir, 'client.token'))
        .split(' ')
        .slice(1),
      { env: { EXECRELAY_CLIENT_KEY: path.join(dir, 'client.key') } },
    );
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout).toContain(os.hostname());
  });
});
