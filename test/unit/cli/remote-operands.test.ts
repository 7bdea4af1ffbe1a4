import { describe, expect, it } from 'vitest';
import { parseRemoteOperand, splitExecOperands } from '../../../cli/remote-operands.js';

describe('remote operands', () => {
  it('exec: one operand before the first -- is the environment; without -- all is the command', () => {
    const raw = (...words: string[]) => ['node', 'main.js', 'exec', ...words];
    expect(splitExecOperands(['laptop', 'make', 'test'], raw('laptop', '--', 'make', 'test'))).toEqual({ environment: 'laptop', argv: ['make', 'test'] });
    expect(splitExecOperands(['make', 'test'], raw('--url', 'ws://x', '--', 'make', 'test'))).toEqual({ argv: ['make', 'test'] });
    // A later -- is the remote command's own.
    expect(splitExecOperands(['laptop', 'git', '--', 'x'], raw('laptop', '--', 'git', '--', 'x'))).toEqual({ environment: 'laptop', argv: ['git', '--', 'x'] });
    expect(splitExecOperands(['uname'], raw('--url', 'ws://x', 'uname'))).toEqual({ argv: ['uname'] });
    expect(() => splitExecOperands(['a', 'b', 'c'], raw('a', 'b', '--', 'c'))).toThrow('expected one environment before --, got a b');
  });

  it('ENV:PATH names an environment; a path, a file:// URI or a name that is no entry name does not', () => {
    expect(parseRemoteOperand('laptop:/srv')).toEqual({ environment: 'laptop', path: '/srv' });
    expect(parseRemoteOperand('lab-2.local:/etc/hostname')).toEqual({ environment: 'lab-2.local', path: '/etc/hostname' });
    expect(parseRemoteOperand('/srv/a:b')).toEqual({ path: '/srv/a:b' });
    expect(parseRemoteOperand('file:///srv')).toEqual({ path: 'file:///srv' });
    expect(parseRemoteOperand('two words:/x')).toEqual({ path: 'two words:/x' });
    expect(parseRemoteOperand('laptop:relative')).toEqual({ environment: 'laptop', path: 'relative' });
  });
});
