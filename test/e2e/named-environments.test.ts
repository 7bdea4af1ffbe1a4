import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli, startCli } from '../support/cli.js';

type Running = Awaited<ReturnType<typeof startCli>>;

/**
 * Named environments (`config.toml`), the default known environments file with `--accept-new`, and
 * `ENV:PATH` operands, with real processes: a relay, an agent that authorizes this client, and the
 * client commands, each run with its own XDG_CONFIG_HOME.
 */
describe('named environments and known identities', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-named-envs-'));
  const token = path.join(dir, 'token');
  const agentKey = path.join(dir, 'agent.key');
  const clientKey = path.join(dir, 'client.key');
  const otherKey = path.join(dir, 'other.key');
  const authorized = path.join(dir, 'authorized-clients');
  const work = path.join(dir, 'work');
  let relay: Running;
  let agent: Running;
  let agentIdentity = '';
  let otherIdentity = '';

  /** A fresh XDG_CONFIG_HOME with `config.toml` holding `toml` (and the token file beside it). */
  function configHome(toml: string): { env: NodeJS.ProcessEnv; configDir: string } {
    const home = mkdtempSync(path.join(dir, 'xdg-'));
    const configDir = path.join(home, 'execrelay');
    mkdirSync(configDir);
    writeFileSync(path.join(configDir, 'config.toml'), toml);
    // The relative token_file of the entries below resolves against the config file's directory.
    writeFileSync(path.join(configDir, 'relay.token'), readFileSync(token), { mode: 0o600 });
    return { env: { XDG_CONFIG_HOME: home, EXECRELAY_CLIENT_KEY: undefined, EXECRELAY_CONFIG: undefined }, configDir };
  }

  const entries = (): string => `
[environments.laptop]
relay = "${relay.firstLine}"
agent_key = "${agentIdentity}"
token_file = "relay.token"
key = "${clientKey}"
cwd = "${work}"

[environments.tofu]
relay = "${relay.firstLine}"
environment = "laptop"
token_file = "relay.token"
key = "${clientKey}"
`;

  beforeAll(async () => {
    mkdirSync(work);
    writeFileSync(path.join(work, 'hostname'), 'named-host\n');
    writeFileSync(token, 'named-environments-token-0123456789\n', { mode: 0o600 });
    agentIdentity = (await runCli(['keygen', '--out', agentKey])).stdout.trim();
    const clientIdentity = (await runCli(['keygen', '--out', clientKey])).stdout.trim();
    otherIdentity = (await runCli(['keygen', '--out', otherKey])).stdout.trim();
    writeFileSync(authorized, `${clientIdentity}\n`, { mode: 0o600 });
    relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', token], { EXECRELAY_LOG_LEVEL: 'warn' });
    agent = await startCli(
      ['agent', '--relay', relay.firstLine, '--environment-id', 'laptop', '--key', agentKey, '--token-file', token, '--authorized-clients', authorized],
      { EXECRELAY_LOG_LEVEL: 'warn' },
    );
  });
  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exec, walk, cat and put reach a named environment; its cwd is exec\'s default and flags override the entry', async () => {
    const { env } = configHome(entries());
    expect(await runCli(['exec', 'laptop', '--', 'pwd'], { env })).toMatchObject({ code: 0, stdout: `${work}\n`, stderr: '' });
    expect(await runCli(['exec', '--cwd', '/', 'laptop', '--', 'pwd'], { env })).toMatchObject({ code: 0, stdout: '/\n' });
    expect(await runCli(['exec', 'laptop', '--', 'sh', '-c', 'exit 3'], { env })).toMatchObject({ code: 3 });
    expect(await runCli(['cat', `laptop:${path.join(work, 'hostname')}`], { env })).toMatchObject({ code: 0, stdout: 'named-host\n' });
    expect(await runCli(['put', '-', `laptop:${path.join(work, 'put.txt')}`], { env, input: 'put through a name' })).toMatchObject({ code: 0 });
    expect(readFileSync(path.join(work, 'put.txt'), 'utf8')).toBe('put through a name');
    const walked = await runCli(['walk', `laptop:${work}`], { env });
    expect(walked.code).toBe(0);
    expect(walked.stdout.split('\n').filter(Boolean).sort()).toEqual([path.join(work, 'hostname'), path.join(work, 'put.txt')]);
    // A flag replaces the entry's value: a wrong --agent-key from the command line wins, and is refused.
    const overridden = await runCli(['exec', '--agent-key', otherIdentity, 'laptop', '--', 'true'], { env });
    expect(overridden.code).toBe(255);
    expect(overridden.stderr).toContain(`agent identity did not match: expected ${otherIdentity}, the agent presented ${agentIdentity}`);
    // cat of a missing file names it, through a name too.
    const missing = await runCli(['cat', `laptop:${path.join(work, 'nope')}`], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(new RegExp(`^execrelay cat: ${path.join(work, 'nope')}: No such file or directory`));
  });

  it('--config and EXECRELAY_CONFIG name another file; a named environment that is nowhere is refused with 255', async () => {
    const elsewhere = path.join(dir, 'elsewhere.toml');
    const { env, configDir } = configHome('');
    writeFileSync(elsewhere, entries().replace(/relay\.token/g, path.join(configDir, 'relay.token')));
    const nowhere = await runCli(['exec', 'laptop', '--', 'true'], { env });
    expect(nowhere.code).toBe(255);
    expect(nowhere.stderr).toBe(
      `execrelay exec: no environment "laptop" in ${path.join(configDir, 'config.toml')}; add an [environments.laptop] entry, or give --relay URL\n`,
    );
    expect(await runCli(['exec', '--config', elsewhere, 'laptop', '--', 'echo', 'flag'], { env })).toMatchObject({ code: 0, stdout: 'flag\n' });
    expect(await runCli(['exec', 'laptop', '--', 'echo', 'variable'], { env: { ...env, EXECRELAY_CONFIG: elsewhere } })).toMatchObject({ code: 0, stdout: 'variable\n' });
    const absent = await runCli(['exec', '--config', path.join(dir, 'absent.toml'), 'laptop', '--', 'true'], { env });
    expect(absent).toMatchObject({ code: 255, stderr: `execrelay exec: config file ${path.join(dir, 'absent.toml')}: does not exist\n` });
  });

  it('a bad config file is refused with 255, naming the file and the key', async () => {
    const cases: Array<[string, string]> = [
      ['[environments.laptop]\ncwd = "relative/dir"\n', 'environments.laptop.cwd: must be an absolute path'],
      ['[environments.laptop]\nrelay = "http://x"\n', 'environments.laptop.relay: must be a ws:// or wss:// URL'],
      ['[environments.laptop]\nagent_key = "12D3KooWnope"\n', 'environments.laptop.agent_key: must be a public identity'],
      ['[environments.laptop]\nhostname = "x"\n', 'environments.laptop: unknown key hostname'],
      ['accept_new = "yes"\n', 'accept_new: '],
      ['# a comment\n[environments.laptop\n', 'not valid TOML (line 2, column '],
    ];
    for (const [toml, expected] of cases) {
      const { env, configDir } = configHome(toml);
      const result = await runCli(['exec', 'laptop', '--', 'true'], { env });
      expect(result.code).toBe(255);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain(`execrelay exec: config file ${path.join(configDir, 'config.toml')}: ${expected}`);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('oversized config and known environments files are refused', async () => {
    const { env, configDir } = configHome(`${'# padding\n'.repeat(30_000)}`);
    const big = await runCli(['exec', 'laptop', '--', 'true'], { env });
    expect(big).toMatchObject({ code: 255, stderr: `execrelay exec: config file ${path.join(configDir, 'config.toml')}: larger than 262144 bytes\n` });
    const small = configHome(entries());
    const known = path.join(small.configDir, 'known_environments');
    writeFileSync(known, '# padding\n'.repeat(500_000));
    const bigKnown = await runCli(['exec', 'tofu', '--', 'true'], { env: small.env });
    expect(bigKnown).toMatchObject({ code: 255, stderr: `execrelay exec: known environments file ${known} is larger than 4194304 bytes\n` });
  });

  it('without a known identity the client refuses and says how; --accept-new learns it (0600, fingerprint), later runs pin it', async () => {
    const { env, configDir } = configHome(entries());
    const known = path.join(configDir, 'known_environments');
    const refused = await runCli(['exec', 'tofu', '--', 'touch', path.join(work, 'ran-unpinned')], { env });
    expect(refused.code).toBe(255);
    expect(refused.stderr).toBe(
      `execrelay exec: environment laptop has no known identity: it is not in ${known}. Give --agent-key KEY (the agent's operator has it: execrelay keygen --show), ` +
        'or learn it on first contact with --accept-new (or accept_new = true in the config)\n',
    );
    expect(existsSync(path.join(work, 'ran-unpinned'))).toBe(false);

    const learned = await runCli(['exec', '--accept-new', 'tofu', '--', 'echo', 'first-contact'], { env });
    expect(learned).toMatchObject({ code: 0, stdout: 'first-contact\n' });
    expect(learned.stderr).toMatch(
      new RegExp(`^execrelay exec: learned the identity of environment laptop: ${agentIdentity} \\(fingerprint SHA256:[A-Za-z0-9+/]{43}\\); recorded in ${known.replace(/[.]/g, '\\.')} line 1\\n$`),
    );
    expect(readFileSync(known, 'utf8')).toBe(`laptop ${agentIdentity}\n`);
    expect(statSync(known).mode & 0o777).toBe(0o600);

    // Pinned from the file now: no flag, no message, and the file is not touched again.
    expect(await runCli(['exec', 'tofu', '--', 'echo', 'pinned'], { env })).toMatchObject({ code: 0, stdout: 'pinned\n', stderr: '' });
    expect(await runCli(['exec', '--accept-new', 'tofu', '--', 'echo', 'still'], { env })).toMatchObject({ code: 0, stderr: '' });
    expect(readFileSync(known, 'utf8')).toBe(`laptop ${agentIdentity}\n`);
  });

  it('accept_new = true in the config learns too, appending to an existing file', async () => {
    const { env, configDir } = configHome(`accept_new = true\n${entries()}`);
    const known = path.join(configDir, 'known_environments');
    writeFileSync(known, `# mine\nother ${otherIdentity}`, { mode: 0o600 });
    const learned = await runCli(['exec', 'tofu', '--', 'echo', 'by-config'], { env });
    expect(learned).toMatchObject({ code: 0, stdout: 'by-config\n' });
    expect(learned.stderr).toContain(`recorded in ${known} line 3`);
    expect(readFileSync(known, 'utf8')).toBe(`# mine\nother ${otherIdentity}\nlaptop ${agentIdentity}\n`);
  });

  it('a changed identity is refused with a warning naming the file and line, --accept-new or not, and nothing runs', async () => {
    const { env, configDir } = configHome(entries());
    const known = path.join(configDir, 'known_environments');
    writeFileSync(known, `# the laptop, as it was\nlaptop ${otherIdentity}\n`, { mode: 0o600 });
    for (const extra of [[], ['--accept-new']]) {
      const result = await runCli(['exec', ...extra, 'tofu', '--', 'touch', path.join(work, 'ran-changed')], { env });
      expect(result.code).toBe(255);
      expect(result.stderr).toContain('WARNING: ENVIRONMENT laptop IDENTITY HAS CHANGED!');
      expect(result.stderr).toContain(`the agent presented ${agentIdentity}, not the identity recorded in ${known} line 2.`);
      expect(result.stderr).toContain(`remove line 2 of ${known}`);
      expect(existsSync(path.join(work, 'ran-changed'))).toBe(false);
      expect(readFileSync(known, 'utf8')).toBe(`# the laptop, as it was\nlaptop ${otherIdentity}\n`);
    }
    // Flags-only use reads the same default file.
    const flags = await runCli(['exec', '--relay', relay.firstLine, '--env', 'laptop', '--token-file', token, '--key', clientKey, '--', 'true'], { env });
    expect(flags.code).toBe(255);
    expect(flags.stderr).toContain(`recorded in ${known} line 2`);
  });

  it('an operand that is not an entry is the environment id when --relay is given', async () => {
    const { env } = configHome('');
    const result = await runCli(['exec', '--relay', relay.firstLine, '--agent-key', agentIdentity, '--token-file', token, '--key', clientKey, 'laptop', '--', 'echo', 'by-id'], { env });
    expect(result).toMatchObject({ code: 0, stdout: 'by-id\n' });
    const two = await runCli(['exec', '--relay', relay.firstLine, 'laptop', 'extra', '--', 'true'], { env });
    expect(two).toMatchObject({ code: 255, stderr: 'execrelay exec: expected one environment before --, got laptop extra\n' });
  });
});
