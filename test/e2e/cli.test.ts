import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCli, runCli } from '../support/cli.js';

describe('execrelay CLI', () => {
  let agent: Awaited<ReturnType<typeof startCli>>;

  beforeAll(async () => {
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0']);
  });
  afterAll(async () => agent.stop());

  it('agent prints only its bound URL on stdout and logs JSON to stderr', async () => {
    expect(agent.firstLine).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    await new Promise((r) => setTimeout(r, 100));
    const logLine = agent.stderr().split('\n').find((l) => l.includes('agent listening'));
    expect(JSON.parse(logLine!)).toMatchObject({ level: 30, name: 'execrelay-agent', url: agent.firstLine });
  });

  it('exec streams stdout and stderr and exits with the remote exit code', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '--', 'sh', '-c', 'echo out; echo err >&2; exit 5']);
    expect(result).toMatchObject({ code: 5, stdout: 'out\n', stderr: 'err\n' });
  });

  it('exec exits with 128+signal when the remote command is killed', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '--', 'sh', '-c', 'kill -TERM $$']);
    expect(result.code).toBe(143);
  });

  it('exec --tty runs the command in a terminal', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '--tty', '--', 'sh', '-c', 'test -t 1 && echo is-a-tty']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('is-a-tty');
  });

  it('exec -i forwards stdin, and EOF closes the remote stdin', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '-i', '--', 'sh', '-c', 'wc -l'], { input: 'a\nb\nc\n' });
    expect(result).toMatchObject({ code: 0 });
    expect(result.stdout.trim()).toBe('3');
  });

  it('exec passes --cwd and --env, and the agent environment by default', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '--cwd', '/tmp', '--set-env', 'GREETING=hello there', '--', 'sh', '-c', 'pwd; echo "$GREETING"; test -n "$PATH" && echo has-path']);
    expect(result.stdout).toBe('/tmp\nhello there\nhas-path\n');
    const clean = await runCli(['exec', '--url', agent.firstLine, '--clean-env', '--', '/bin/sh', '-c', 'echo "[$HOME]"']);
    expect(clean.stdout).toBe('[]\n');
  });

  it('exec takes the URL from EXECRELAY_URL', async () => {
    const result = await runCli(['exec', '--', 'echo', 'via-env'], { env: { EXECRELAY_URL: agent.firstLine } });
    expect(result).toMatchObject({ code: 0, stdout: 'via-env\n' });
  });

  it('exec explains a missing URL (255), an unreachable agent (255) and a missing remote program (127)', async () => {
    // A program that exists but cannot be run is not "command not found".
    const plainFile = path.join(mkdtempSync(path.join(os.tmpdir(), 'execrelay-cli-')), 'not-executable');
    writeFileSync(plainFile, 'echo hi\n', { mode: 0o644 });
    // Independent runs, side by side (each is a CLI process start).
    const [missing, unreachable, nocmd, nocmdTty, notExecutable, exit2] = await Promise.all([
      runCli(['exec', '--', 'true'], { env: { EXECRELAY_URL: '' } }),
      runCli(['exec', '--url', 'ws://127.0.0.1:1', '--', 'true']),
      runCli(['exec', '--url', agent.firstLine, '--', 'no-such-command-xyz']),
      runCli(['exec', '--tty', '--url', agent.firstLine, '--', 'no-such-command-xyz']),
      runCli(['exec', '--url', agent.firstLine, '--', plainFile]),
      runCli(['exec', '--url', agent.firstLine, '--', 'sh', '-c', 'exit 2']),
    ]);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toMatch(/give a named environment from the config file, or --relay URL --env ID \(or --url URL/);
    expect(unreachable.code).toBe(255);
    expect(unreachable.stderr).toMatch(/cannot connect to ws:\/\/127\.0\.0\.1:1/);
    expect(nocmd.code).toBe(127);
    expect(nocmd.stderr).toMatch(/no-such-command-xyz: command not found/);
    expect(nocmdTty.code).toBe(127);
    expect(notExecutable.code).toBe(255);
    expect(notExecutable.stderr).toMatch(/EACCES/);
    // The remote command's own statuses pass through, 1 and 2 included.
    expect(exit2.code).toBe(2);
  });

  it('usage errors exit 255 in one line: unknown options, a forgotten --, a relative --cwd, an unknown command', async () => {
    const forgot = await runCli(['exec', '--url', agent.firstLine, 'ls', '-a']);
    expect(forgot.code).toBe(255);
    expect(forgot.stderr).toBe("execrelay exec: unknown option '-a': put the remote command after --, as in: execrelay exec [options] [ENV] -- ls -a\n");
    const relative = await runCli(['exec', '--url', agent.firstLine, '--cwd', 'tmp', '--', 'pwd']);
    expect(relative.code).toBe(255);
    expect(relative.stdout).toBe('');
    expect(relative.stderr).toMatch(/^execrelay exec: option '--cwd <dir>' argument 'tmp' is invalid\. must be an absolute path on the executor, got "tmp" \(see execrelay exec --help\)\n$/);
    const relativeEnv = await runCli(['exec', '--url', agent.firstLine, '--', 'pwd'], { env: { EXECRELAY_CWD: 'tmp' } });
    expect(relativeEnv.code).toBe(255);
    const unknown = await runCli(['frobnicate']);
    expect(unknown).toMatchObject({ code: 255, stderr: "execrelay: unknown command 'frobnicate' (see execrelay --help)\n" });
    const badFlag = await runCli(['walk', '--max-depth', 'deep', '/']);
    expect(badFlag.code).toBe(255);
    expect(badFlag.stderr.trim().split('\n')).toHaveLength(1);
    const none = await runCli([]);
    expect(none.code).toBe(255);
    expect((await runCli(['--version'])).code).toBe(0);
  });

  it('rejects a bad --listen URL and bad numbers with a clear error', async () => {
    const badListen = await runCli(['agent', '--listen', 'http://127.0.0.1:0']);
    expect(badListen.code).not.toBe(0);
    expect(badListen.stderr).toMatch(/only ws:\/\/ is supported/);
    const badNumber = await runCli(['agent', '--retained-output-bytes', 'lots']);
    expect(badNumber.code).not.toBe(0);
    expect(badNumber.stderr).toMatch(/expected a positive whole number/);
  });

  it('agent serves one JSON object per line on stdio', async () => {
    const input = [
      JSON.stringify({ id: 1, method: 'initialize', params: { clientName: 'stdio-test' } }),
      JSON.stringify({ method: 'initialized', params: {} }),
      '{not json',
      JSON.stringify({ id: 2, method: 'process/terminate', params: { processId: 'none' } }),
    ].join('\n');
    const result = await runCli(['agent', '--listen', 'stdio'], { input: `${input}\n` });
    const lines = result.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.find((l) => l.id === 1)).toMatchObject({ result: { sessionId: expect.any(String) } });
    expect(lines).toContainEqual({ id: -1, error: { code: -32600, message: 'invalid request: malformed JSON' } });
    expect(lines).toContainEqual({ id: 2, result: { running: false } });
    expect(result.code).toBe(0);
  });

  it('prints help for every command', async () => {
    for (const args of [['--help'], ['agent', '--help'], ['exec', '--help']]) {
      const result = await runCli(args);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/Usage: execrelay/);
    }
  });
});
