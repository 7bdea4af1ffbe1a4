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

  it('exec explains a missing URL, an unreachable agent and a failed start', async () => {
    const missing = await runCli(['exec', '--', 'true'], { env: { EXECRELAY_URL: '' } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/give --relay URL --env ID --agent-key KEY \(or --url URL/);
    const unreachable = await runCli(['exec', '--url', 'ws://127.0.0.1:1', '--', 'true']);
    expect(unreachable.code).toBe(255);
    expect(unreachable.stderr).toMatch(/cannot connect to ws:\/\/127\.0\.0\.1:1/);
    const nocmd = await runCli(['exec', '--url', agent.firstLine, '--', 'no-such-command-xyz']);
    expect(nocmd.code).toBe(255);
    expect(nocmd.stderr).toMatch(/no-such-command-xyz: command not found/);
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
