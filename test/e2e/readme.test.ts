import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, startCli } from '../support/cli.js';

type Running = Awaited<ReturnType<typeof startCli>>;

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** The first fenced block of `language` after the heading `heading`. */
function block(heading: string, language: string): string {
  const start = README.indexOf(heading);
  if (start === -1) throw new Error(`README has no "${heading}"`);
  const match = new RegExp('```' + language + '\\n([\\s\\S]*?)```').exec(README.slice(start));
  if (!match) throw new Error(`README has no ${language} block after "${heading}"`);
  return match[1]!;
}

/** The block's logical lines (backslash continuations joined), without comment-only lines and trailing comments. */
function logicalLines(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.replace(/\s+#\s.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/**
 * The README's commands run as written, against real processes, so that it cannot drift: the
 * quick start's printed command, and "Running it for real" (relay, keys, authorize, agent, the
 * client commands with flags and through the config file it shows). Only what cannot run here is
 * replaced: the relay's public address, the example identities and the example directory.
 */
describe('README', () => {
  const started: Running[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-readme-'));
  afterAll(async () => {
    for (const running of started.reverse()) await running.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the quick start prints a command that runs', async () => {
    const quickstart = await startCli(['quickstart'], { EXECRELAY_LOG_LEVEL: 'warn' });
    started.push(quickstart);
    const words = quickstart.firstLine.split(' ');
    expect(words.slice(0, 3)).toEqual(['node', expect.stringMatching(/main\.js$/), 'exec']);
    const result = await runCli(words.slice(2));
    expect(result).toMatchObject({ code: 0, stdout: expect.stringMatching(/^\S+ /) });
    // Like every relay, the quickstart's serves /metrics on its port.
    const relayUrl = new URL(words[words.indexOf('--relay') + 1]!);
    const scrape = await fetch(`http://${relayUrl.host}/metrics`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toMatch(/^execrelay_relay_executors_registered 1$/m);
    // Stopped, it leaves no token or key behind.
    const stateDirectory = path.dirname(words[words.indexOf('--token-file') + 1]!);
    expect(existsSync(stateDirectory)).toBe(true);
    await quickstart.stop();
    expect(existsSync(stateDirectory)).toBe(false);
  });

  // Eleven CLI processes one after the other, as a reader types them: more than the default 30 s on a loaded machine.
  it('"Running it for real" runs as written, flags and config file alike', async () => {
    const home = path.join(dir, 'home');
    const cwd = path.join(dir, 'cwd');
    const work = path.join(dir, 'work');
    for (const d of [home, cwd, work]) mkdirSync(d);
    writeFileSync(path.join(work, 'Makefile'), 'test:\n\t@echo made-test\n');
    writeFileSync(path.join(cwd, 'notes.txt'), 'my notes\n');
    const env: NodeJS.ProcessEnv = {
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, '.config'),
      XDG_STATE_HOME: path.join(home, '.local', 'state'),
      EXECRELAY_CLIENT_KEY: undefined,
      EXECRELAY_CONFIG: undefined,
      EXECRELAY_LOG_LEVEL: 'warn',
    };
    const lines = logicalLines(block('## Running it for real', 'sh'));
    const firstCommand = lines.findIndex((line) => line.startsWith('execrelay '));
    // The shell lines before the first command make the token files.
    execFileSync('bash', ['-c', lines.slice(0, firstCommand).join('\n')], { cwd });
    for (const file of ['relay.tokens', 'agent.token', 'client.token']) expect(statSync(path.join(cwd, file)).mode & 0o777).toBe(0o600);

    let relayUrl = '';
    let clientIdentity = '';
    let agentIdentity = '';
    const concrete = (line: string): string[] => {
      const identity = line.startsWith('execrelay authorize') ? clientIdentity : agentIdentity;
      return line
        .replace('0.0.0.0:7700', '127.0.0.1:0')
        .replace('wss://relay.example:7700', relayUrl)
        .replace('12D3KooW…', identity)
        .replace(/\[(--root [^\]]+)\]/, '$1')
        .replaceAll('/home/me/work', work)
        .split(/\s+/)
        .slice(1);
    };
    const ran: string[] = [];
    for (const line of lines.slice(firstCommand)) {
      expect(line).toMatch(/^execrelay /);
      const args = concrete(line);
      ran.push(args[0]!);
      if (args[0] === 'relay' || args[0] === 'agent') {
        const running = await startCli(args, env, { cwd });
        started.push(running);
        if (args[0] === 'relay') relayUrl = running.firstLine;
        else expect(running.firstLine).toBe(agentIdentity);
        continue;
      }
      // The commands by name use the config file the README shows next.
      if (args[0] !== 'keygen' && !args.includes('--relay') && !existsSync(path.join(home, '.config', 'execrelay', 'config.toml'))) writeConfig();
      const result = await runCli(args, { env, cwd });
      expect({ line, code: result.code, stderr: result.stderr }).toEqual({ line, code: 0, stderr: expect.any(String) });
      if (args[0] === 'keygen' && args.includes('--out')) agentIdentity = result.stdout.trim();
      else if (args[0] === 'keygen') clientIdentity = result.stdout.trim();
      if (args.at(-2) === 'make') expect(result.stdout).toBe('made-test\n');
      if (args[0] === 'cat') expect(result.stdout).toBe(readFileSync(path.join(work, 'Makefile'), 'utf8'));
    }
    expect(ran).toEqual(['relay', 'keygen', 'keygen', 'authorize', 'agent', 'exec', 'exec', 'walk', 'cat', 'put', 'cp']);
    expect(readFileSync(path.join(work, 'notes.txt'), 'utf8')).toBe('my notes\n');
    expect(readFileSync(path.join(cwd, 'work-copy', 'notes.txt'), 'utf8')).toBe('my notes\n');
    expect(readFileSync(path.join(cwd, 'work-copy', 'Makefile'), 'utf8')).toBe(readFileSync(path.join(work, 'Makefile'), 'utf8'));

    function writeConfig(): void {
      const configDir = path.join(home, '.config', 'execrelay');
      const toml = block('### Named environments and known identities', 'toml')
        .replace('wss://relay.example:7700', relayUrl)
        .replace('12D3KooW…', agentIdentity)
        .replaceAll('/home/me/work', work);
      writeFileSync(path.join(configDir, 'config.toml'), toml);
      // token_file = "client.token" is relative to the config file's directory.
      copyFileSync(path.join(cwd, 'client.token'), path.join(configDir, 'client.token'));
    }
  }, 90_000);
});
