import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_PATH, startCli } from '../support/cli.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const DEPLOY_MD = readFileSync(path.join(REPO, 'docs/deploy.md'), 'utf8');
const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

/** The ```sh blocks of docs/deploy.md (indented ones, in list items, too), dedented. */
function shBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^( *)```sh\n([\s\S]*?)^\1```/gm)].map(([, indent, body]) =>
    body!
      .split('\n')
      .map((line) => line.slice(indent!.length))
      .join('\n'),
  );
}

/**
 * The commands of a block, in order: comment lines dropped, a trailing `# comment` cut, and a
 * command that opens a parenthesis (a subshell) or ends in `\` joined with the lines that follow
 * until it is closed.
 */
function commandsOf(block: string): string[] {
  const commands: string[] = [];
  let pending: string[] = [];
  let depth = 0;
  for (const raw of block.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').trimEnd();
    if (pending.length === 0 && (line.trim() === '' || line.trimStart().startsWith('#'))) continue;
    pending.push(line);
    depth += (line.match(/\(/g) ?? []).length - (line.match(/\)/g) ?? []).length;
    if (depth > 0 || line.endsWith('\\')) continue;
    commands.push(pending.join('\n'));
    pending = [];
  }
  if (pending.length > 0) commands.push(pending.join('\n'));
  return commands;
}

/** What this test does with one command of the guide. */
type Handling =
  /** Run as written (paths under /etc and /var/lib moved into a temporary directory). */
  | { kind: 'run' }
  /** A `VAR=value` line of a settings file: the variable must be one that `execrelay APP --help` shows. */
  | { kind: 'setting'; app: 'relay' | 'agent' }
  /** Deliberately not run (it needs root, systemd as PID 1, or the published package); what is checked instead. */
  | { kind: 'not-run'; reason: string };

const TOKEN_SNIPPET = `(umask 077
 a=$(head -c 32 /dev/urandom | base64); c=$(head -c 32 /dev/urandom | base64)
 printf '%s executor build-*\\n%s client build-*\\n' "$a" "$c" > /etc/execrelay/relay-tokens
 echo "$a" > agent.token; echo "$c" > client.token)`;

/**
 * Every command of docs/deploy.md's sh blocks, exactly as written there (comments cut). A command
 * added to the guide or changed in it fails the first test until it is handled here.
 */
const HANDLING: Readonly<Record<string, Handling>> = {
  // 1. Install
  'apt-get install -y nodejs npm': { kind: 'not-run', reason: 'installs Debian packages (root); the test runs on the node it was started with' },
  'npm install -g execrelay': { kind: 'not-run', reason: 'installs the published package globally (root); test/long/package.test.ts installs the packed tarball without a compiler and runs it' },
  'execrelay --version': { kind: 'run' },
  'cp deploy/systemd/execrelay.sysusers.conf /etc/sysusers.d/execrelay.conf && systemd-sysusers': {
    kind: 'not-run',
    reason: 'systemd-sysusers creates system users (root): the cp runs, then systemd-sysusers --dry-run --root on the copy',
  },
  // 2. The relay host
  'cp deploy/systemd/execrelay-relay.service /etc/systemd/system/': { kind: 'run' },
  'install -d -m 0750 /etc/execrelay': { kind: 'run' },
  'install -m 0640 deploy/systemd/relay.env /etc/execrelay/relay.env': { kind: 'run' },
  [TOKEN_SNIPPET]: { kind: 'run' },
  'chown execrelay:execrelay /etc/execrelay/relay-tokens': { kind: 'not-run', reason: 'needs root and the system user: the user and group must be the ones sysusers creates and the unit runs as' },
  'systemctl daemon-reload && systemctl enable --now execrelay-relay': {
    kind: 'not-run',
    reason: 'needs systemd as PID 1 and root: the unit is checked by systemd-analyze verify (systemd-units.test.ts), and the relay runs here with the unit’s environment',
  },
  'curl -fsS http://127.0.0.1:7700/readyz': { kind: 'run' },
  // TLS: the settings in relay.env
  'EXECRELAY_RELAY_LISTEN=0.0.0.0:7700': { kind: 'setting', app: 'relay' },
  'EXECRELAY_TLS_CERT=/etc/execrelay/tls.crt': { kind: 'setting', app: 'relay' },
  'EXECRELAY_TLS_KEY=/etc/execrelay/tls.key': { kind: 'setting', app: 'relay' },
  // 3. An agent host
  'cp deploy/systemd/execrelay-agent.service /etc/systemd/system/': { kind: 'run' },
  'install -d -m 0750 /etc/execrelay-agent': { kind: 'run' },
  'install -m 0600 deploy/systemd/agent.env /etc/execrelay-agent/agent.env': { kind: 'run' },
  'execrelay keygen --out /etc/execrelay-agent/agent.key': { kind: 'run' },
  'install -m 0600 agent.token /etc/execrelay-agent/relay-token': { kind: 'run' },
  'execrelay authorize --authorized-clients /etc/execrelay-agent/authorized-clients 12D3KooW…': { kind: 'run' },
  'chown -R execrelay-agent:execrelay-agent /etc/execrelay-agent': { kind: 'not-run', reason: 'needs root and the system user: the user and group must be the ones sysusers creates and the unit runs as' },
  'systemctl daemon-reload && systemctl enable --now execrelay-agent': {
    kind: 'not-run',
    reason: 'needs systemd as PID 1 and root: the unit is checked by systemd-analyze verify (systemd-units.test.ts), and the agent runs here with the unit’s environment',
  },
  'journalctl -u execrelay-agent -n 20': { kind: 'not-run', reason: 'reads the systemd journal: the agent run here must log the line the guide tells the operator to look for' },
  // The client
  'execrelay exec --relay wss://relay.example.com --env build-host-1 --agent-key 12D3KooW… --token-file client.token -- uname -a': { kind: 'run' },
  // The audit log: settings of relay.env and agent.env (the relay has no --audit-log-reads)
  'EXECRELAY_AUDIT_LOG=/var/lib/execrelay/audit.jsonl': { kind: 'setting', app: 'relay' },
  'EXECRELAY_AUDIT_LOG=/var/lib/execrelay-agent/audit.jsonl': { kind: 'setting', app: 'agent' },
  'EXECRELAY_AUDIT_LOG_READS=1': { kind: 'setting', app: 'agent' },
  // Behind an HTTP proxy: a setting of agent.env
  'EXECRELAY_PROXY=http://proxy.corp.example:3128': { kind: 'setting', app: 'agent' },
};

const DOC_COMMANDS = shBlocks(DEPLOY_MD).flatMap(commandsOf);

/** `KEY=VALUE` lines of a settings file (comments and blank lines skipped). */
function envFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** A unit's `Environment=KEY=VALUE` settings, its `EnvironmentFile=` (without a leading `-`) and its ExecStart arguments after the binary. */
function unitSettings(text: string): { environment: Record<string, string>; environmentFile: string; args: string[] } {
  const values = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);
  return {
    environment: envFile(values('Environment').join('\n')),
    environmentFile: values('EnvironmentFile')[0]!.replace(/^-/, ''),
    args: values('ExecStart')[0]!.split(' ').slice(1),
  };
}

describe('docs/deploy.md commands', () => {
  it('every command of its sh blocks is handled by this test: run, checked as a setting, or deliberately not run with the reason', () => {
    expect(DOC_COMMANDS.length).toBeGreaterThan(20);
    expect([...DOC_COMMANDS].sort()).toEqual(Object.keys(HANDLING).sort());
    // The extraction can fail: a changed command is a command this test does not know.
    expect(commandsOf('# c\nexecrelay --versions  # typo\n(a\n b)\n')).toEqual(['execrelay --versions', '(a\n b)']);
  });

  it('every command is valid sh, and every setting is a variable of the app’s --help', () => {
    for (const command of DOC_COMMANDS) {
      const syntax = spawnSync('sh', ['-n', '-c', command], { encoding: 'utf8' });
      expect(syntax.status, `${command}: ${syntax.stderr}`).toBe(0);
    }
    const help = (app: string) => execFileSync(process.execPath, [CLI_PATH, app, '--help'], { encoding: 'utf8' });
    const helps = { relay: help('relay'), agent: help('agent') };
    for (const [command, handling] of Object.entries(HANDLING)) {
      if (handling.kind !== 'setting') continue;
      const variable = command.slice(0, command.indexOf('='));
      expect(helps[handling.app], `${variable} in execrelay ${handling.app} --help`).toContain(`env: ${variable}`);
    }
  });

  it('the commands that need root are right about what they name: the users exist in sysusers.conf and are the units’ users, the units exist', () => {
    const sysusers = readFileSync(path.join(REPO, 'deploy/systemd/execrelay.sysusers.conf'), 'utf8');
    const users = [...sysusers.matchAll(/^u\s+(\S+)/gm)].map((m) => m[1]!);
    for (const command of DOC_COMMANDS.filter((c) => c.startsWith('chown '))) {
      const [user, group] = command.split(' ').find((word) => word.includes(':'))!.split(':');
      expect(users, command).toContain(user);
      expect(group, command).toBe(user); // sysusers `u` lines create a group of the same name
    }
    for (const command of DOC_COMMANDS.filter((c) => c.startsWith('systemctl ') || c.startsWith('journalctl '))) {
      const unit = /(?:--now|-u) (\S+)/.exec(command)![1]!;
      const file = readFileSync(path.join(REPO, 'deploy/systemd', `${unit}.service`), 'utf8');
      expect(users, unit).toContain(/^User=(.*)$/m.exec(file)![1]);
    }
    for (const [command, handling] of Object.entries(HANDLING)) {
      if (handling.kind === 'not-run') expect(handling.reason.length, command).toBeGreaterThan(30);
    }
  });

  describe('run as written, with /etc and /var/lib moved into a temporary directory', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-deploy-doc-'));
    const root = path.join(dir, 'root'); // stands for /
    const work = path.join(dir, 'work'); // the operator's working directory: the package's, with deploy/
    const bin = path.join(dir, 'bin');
    const clientConfig = path.join(dir, 'client-config'); // the client user's XDG_CONFIG_HOME
    const started: Array<Awaited<ReturnType<typeof startCli>>> = [];
    afterAll(async () => {
      for (const cli of started.reverse()) await cli.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    for (const d of [bin, work, path.join(root, 'etc/sysusers.d'), path.join(root, 'etc/systemd/system'), path.join(root, 'var/lib/execrelay'), clientConfig]) {
      mkdirSync(d, { recursive: true });
    }
    symlinkSync(path.join(REPO, 'deploy'), path.join(work, 'deploy'));
    // `execrelay` on the PATH is the CLI built in this checkout (the units' /usr/local/bin/execrelay).
    writeFileSync(path.join(bin, 'execrelay'), `#!/bin/sh\nexec "${process.execPath}" "${CLI_PATH}" "$@"\n`);
    chmodSync(path.join(bin, 'execrelay'), 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`, EXECRELAY_LOG_LEVEL: 'warn', XDG_CONFIG_HOME: clientConfig, XDG_STATE_HOME: path.join(dir, 'state') };
    const moved = (text: string) => text.replaceAll('/etc/', `${root}/etc/`).replaceAll('/var/lib/', `${root}/var/lib/`);
    const sh = (script: string) => execFileSync('sh', ['-c', moved(script)], { cwd: work, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    /** The one command of the guide starting with `prefix`, handled as `kind`. */
    const docCommand = (prefix: string, kind: Handling['kind'] = 'run') => {
      const exact = DOC_COMMANDS.filter((c) => c === prefix);
      const found = exact.length > 0 ? exact : DOC_COMMANDS.filter((c) => c.startsWith(prefix));
      expect(found, prefix).toHaveLength(1);
      expect(HANDLING[found[0]!], found[0]).toMatchObject({ kind });
      return found[0]!;
    };

    /** A service started as its unit would: the unit's Environment= and EnvironmentFile= (the installed copies), its ExecStart. */
    async function startAsUnit(unit: string, overrides: Record<string, string>) {
      const settings = unitSettings(readFileSync(path.join(root, 'etc/systemd/system', unit), 'utf8'));
      const unitEnv = Object.fromEntries(Object.entries({ ...settings.environment, ...envFile(readFileSync(moved(settings.environmentFile), 'utf8')) }).map(([k, v]) => [k, moved(v)]));
      const cli = await startCli(settings.args, { ...unitEnv, EXECRELAY_LOG_LEVEL: 'info', ...overrides });
      started.push(cli);
      return cli;
    }

    it('installs, makes the tokens, the agent key and authorized clients, runs relay, agent and client on them', async () => {
      // 1. Install: the version; the users file, checked by systemd-sysusers in dry-run mode.
      expect(sh(docCommand('execrelay --version')).trim()).toBe(PACKAGE_VERSION);
      const sysusers = docCommand('cp deploy/systemd/execrelay.sysusers.conf', 'not-run');
      const created = sh(sysusers.replace(/systemd-sysusers$/, `systemd-sysusers --dry-run --root=${root} 2>&1`));
      expect(created).toContain("Creating user 'execrelay' (execrelay relay)");
      expect(created).toContain("Creating user 'execrelay-agent' (execrelay executor agent)");

      // 2. The relay host, in the guide's order.
      for (const prefix of ['cp deploy/systemd/execrelay-relay.service', 'install -d -m 0750 /etc/execrelay', 'install -m 0640 deploy/systemd/relay.env', '(umask 077']) sh(docCommand(prefix));
      expect(readFileSync(path.join(root, 'etc/systemd/system/execrelay-relay.service'), 'utf8')).toBe(readFileSync(path.join(REPO, 'deploy/systemd/execrelay-relay.service'), 'utf8'));
      expect(statSync(path.join(root, 'etc/execrelay')).mode & 0o777).toBe(0o750);
      expect(statSync(path.join(root, 'etc/execrelay/relay.env')).mode & 0o777).toBe(0o640);
      const tokens = readFileSync(path.join(root, 'etc/execrelay/relay-tokens'), 'utf8').trim().split('\n');
      expect(tokens.map((line) => line.split(' ').slice(1).join(' '))).toEqual(['executor build-*', 'client build-*']);
      for (const file of [path.join(root, 'etc/execrelay/relay-tokens'), path.join(work, 'agent.token'), path.join(work, 'client.token')]) {
        expect(statSync(file).mode & 0o077).toBe(0);
      }
      // The relay as its unit runs it (on a free port instead of 7700), then the guide's readiness check.
      const relay = await startAsUnit('execrelay-relay.service', { EXECRELAY_RELAY_LISTEN: '127.0.0.1:0' });
      const relayHostPort = new URL(relay.firstLine).host;
      expect(sh(docCommand('curl -fsS').replace('127.0.0.1:7700', relayHostPort))).toBe('ready\n');

      // 3. An agent host, in the guide's order; the client's identity comes from its own `execrelay keygen` (default key path).
      const clientIdentity = execFileSync('execrelay', ['keygen'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
      expect(statSync(path.join(clientConfig, 'execrelay/client.key')).isFile()).toBe(true);
      for (const prefix of ['cp deploy/systemd/execrelay-agent.service', 'install -d -m 0750 /etc/execrelay-agent', 'install -m 0600 deploy/systemd/agent.env']) sh(docCommand(prefix));
      const agentIdentity = sh(docCommand('execrelay keygen --out')).trim();
      expect(agentIdentity).toMatch(/^12D3KooW/);
      sh(docCommand('install -m 0600 agent.token'));
      sh(docCommand('execrelay authorize').replace('12D3KooW…', clientIdentity));
      expect(readFileSync(path.join(root, 'etc/execrelay-agent/authorized-clients'), 'utf8')).toContain(clientIdentity);
      // The operator sets EXECRELAY_RELAY in agent.env, as the guide says; the agent runs as its unit runs it.
      const agentEnvFile = path.join(root, 'etc/execrelay-agent/agent.env');
      writeFileSync(agentEnvFile, readFileSync(agentEnvFile, 'utf8').replace('wss://relay.example.com', relay.firstLine));
      const agent = await startAsUnit('execrelay-agent.service', {});
      expect(agent.firstLine).toBe(agentIdentity);
      // What `journalctl -u execrelay-agent` is to show.
      const journalHint = /^journalctl .*# "(.*)"$/m.exec(DEPLOY_MD)![1]!;
      await expect.poll(() => agent.stderr(), { timeout: 10_000 }).toContain(`"msg":"${journalHint}"`);

      // The client's command, with the client's default key.
      const exec = docCommand('execrelay exec').replace('wss://relay.example.com', relay.firstLine).replace('12D3KooW…', agentIdentity);
      expect(sh(exec)).toContain(os.hostname());
    });
  });
});
