import { describe, expect, it } from 'vitest';
import { RelayCredentials } from '../../../relay/relay-credentials.js';

const A = 'token-a-0123456789abcdef';
const B = 'token-b-0123456789abcdef';
const C = 'token-c-0123456789abcdef';
const bearer = (token: string) => `Bearer ${token}`;

describe('RelayCredentials', () => {
  const { credentials, warnings } = RelayCredentials.parse(`# tokens\n\n${A} executor laptop-*,build.1\n  ${B}   client   *  \n${C}\n`, 'tokens');

  it('parses TOKEN ROLE SCOPE lines; a bare line is both roles everywhere, with a warning naming its line only', () => {
    expect(credentials.size).toBe(3);
    expect(credentials.countFor('executor')).toBe(2);
    expect(credentials.countFor('client')).toBe(2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^tokens line 5: a bare token/);
    expect(warnings[0]).not.toContain(C);
  });

  it('checks role, then scope (globs: * is any run, everything else literal)', () => {
    const ok = (header: string, role: 'executor' | 'client', env: string) => {
      const check = credentials.check(header, role, env);
      return check.ok ? 'ok' : check.refusal.reason;
    };
    expect(ok(bearer(A), 'executor', 'laptop-1')).toBe('ok');
    expect(ok(bearer(A), 'executor', 'laptop-')).toBe('ok');
    expect(ok(bearer(A), 'executor', 'build.1')).toBe('ok');
    expect(ok(bearer(A), 'executor', 'buildx1')).toBe('environment_not_in_scope');
    expect(ok(bearer(A), 'executor', 'my-laptop-1')).toBe('environment_not_in_scope');
    expect(ok(bearer(A), 'client', 'laptop-1')).toBe('forbidden_role');
    expect(ok(bearer(B), 'client', 'anything')).toBe('ok');
    expect(ok(bearer(B), 'executor', 'anything')).toBe('forbidden_role');
    expect(ok(bearer(C), 'executor', 'x')).toBe('ok');
    expect(ok(bearer(C), 'client', 'x')).toBe('ok');
    expect(ok(bearer('token-d-0123456789abcdef'), 'client', 'x')).toBe('unauthorized');
    expect(ok('', 'client', 'x')).toBe('unauthorized');
    expect(ok(`Basic ${B}`, 'client', 'x')).toBe('unauthorized');
  });

  it('credential ids are short, stable across files, and distinct per token', () => {
    const again = RelayCredentials.parse(`${B} client laptop-*\n`, 'other').credentials;
    const id = credentials.verify(B)!.id;
    expect(id).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(again.verify(B)!.id).toBe(id);
    expect(credentials.verify(A)!.id).not.toBe(id);
    expect(again.permits(id, 'client', 'laptop-2')).toBe(true);
    expect(again.permits(id, 'client', 'desk-2')).toBe(false);
    expect(again.permits(credentials.verify(A)!.id, 'executor', 'laptop-2')).toBe(false);
  });

  it('refuses bad files with the line number and never the token', () => {
    const bad: Array<[string, RegExp]> = [
      [`${A} owner *`, /line 1: role must be "executor" or "client"/],
      [`${A} client`, /line 1: expected "TOKEN ROLE SCOPE"/],
      [`${A} client a b`, /line 1: expected "TOKEN ROLE SCOPE"/],
      [`${A} client laptop/1`, /line 1: scope entries are environment ids or globs/],
      [`${A} client a,,b`, /line 1: scope entries/],
      [`short client *`, /line 1: token shorter than 16 characters/],
      [`${A} client *\n${A} executor *`, /line 2: the same token is listed twice/],
      [`# nothing\n`, /holds no token/],
    ];
    for (const [text, error] of bad) {
      expect(() => RelayCredentials.parse(text, 'tokens'), text).toThrow(error);
      try {
        RelayCredentials.parse(text, 'tokens');
      } catch (thrown) {
        expect((thrown as Error).message).not.toContain(A);
      }
    }
  });
});
