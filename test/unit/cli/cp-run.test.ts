import { describe, expect, it } from 'vitest';
import { parseCpOperand } from '../../../cli/cp-run.js';

describe('parseCpOperand', () => {
  it('reads ENV:PATH and :PATH as the executor side, everything else as local', () => {
    expect(parseCpOperand('laptop:/srv/x')).toEqual({ shown: 'laptop:/srv/x', remote: true, environment: 'laptop', path: '/srv/x' });
    expect(parseCpOperand(':/srv/x')).toEqual({ shown: ':/srv/x', remote: true, path: '/srv/x' });
    expect(parseCpOperand('laptop:relative')).toEqual({ shown: 'laptop:relative', remote: true, environment: 'laptop', path: 'relative' });
    expect(parseCpOperand('./a:b')).toEqual({ shown: './a:b', remote: false, path: './a:b' });
    expect(parseCpOperand('/tmp/a:b')).toEqual({ shown: '/tmp/a:b', remote: false, path: '/tmp/a:b' });
    expect(parseCpOperand('notes.txt')).toEqual({ shown: 'notes.txt', remote: false, path: 'notes.txt' });
    expect(parseCpOperand('file:///srv/x')).toEqual({ shown: 'file:///srv/x', remote: false, path: 'file:///srv/x' });
  });
});
