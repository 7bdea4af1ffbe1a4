import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runCli } from '../support/cli.js';

/** What bash completes for the words `words` (the last one being completed), with the script sourced in a real bash. */
function complete(script: string, words: string[], env: NodeJS.ProcessEnv = {}): string[] {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-completion-'));
  const file = path.join(dir, 'execrelay.bash');
  writeFileSync(file, script);
  const program = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _execrelay; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const out = execFileSync('bash', ['-c', program, 'bash', file, ...words], { encoding: 'utf8', env: { ...process.env, ...env } });
  return out.split('\n').filter(Boolean);
}

describe('execrelay completion', () => {
  it('bash: the script from the command tree completes commands, options, subcommands and config entry names', async () => {
    const result = await runCli(['completion', 'bash']);
    expect(result.code).toBe(0);
    expect(complete(result.stdout, ['execrelay', 'e'])).toEqual(['exec']);
    expect(complete(result.stdout, ['execrelay', 'k'])).toEqual(['keygen']);
    expect(complete(result.stdout, ['execrelay', 'exec', '--acc'])).toEqual(['--accept-relay-key', '--accept-new']);
    expect(complete(result.stdout, ['execrelay', 'walk', '--max-d'])).toEqual(['--max-depth', '--max-directories']);
    expect(complete(result.stdout, ['execrelay', 'mcp', ''])).toEqual(['login', 'tools']);
    const home = mkdtempSync(path.join(os.tmpdir(), 'execrelay-completion-home-'));
    mkdirSync(path.join(home, 'execrelay'));
    writeFileSync(path.join(home, 'execrelay', 'config.toml'), '[environments.laptop]\nrelay = "ws://x"\n[environments.lab-2]\n');
    expect(complete(result.stdout, ['execrelay', 'exec', 'la'], { XDG_CONFIG_HOME: home, EXECRELAY_CONFIG: '' })).toEqual(['laptop', 'lab-2']);
    expect(complete(result.stdout, ['execrelay', 'keygen', 'la'], { XDG_CONFIG_HOME: home })).toEqual([]);
  });

  it('zsh and fish scripts are generated; another shell is a usage error (255)', async () => {
    const zsh = await runCli(['completion', 'zsh']);
    expect(zsh.code).toBe(0);
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain('complete -o default -F _execrelay execrelay');
    const fish = await runCli(['completion', 'fish']);
    expect(fish.code).toBe(0);
    expect(fish.stdout).toContain("complete -c execrelay -n __fish_use_subcommand -a exec -d 'run a command on the executor");
    expect(fish.stdout).toContain("complete -c execrelay -n '__fish_seen_subcommand_from exec' -l accept-new");
    const tcsh = await runCli(['completion', 'tcsh']);
    expect(tcsh.code).toBe(255);
    expect(tcsh.stderr).toMatch(/^execrelay completion: .*'tcsh' is invalid.* Allowed choices are bash, zsh, fish/);
  });
});
