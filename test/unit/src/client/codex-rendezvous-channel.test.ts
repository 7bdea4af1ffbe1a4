import { describe, expect, it } from 'vitest';
import { ClientNotAuthorizedError } from '../../../../src/client/client-not-authorized-error.js';
import { CodexExecutorKeyMismatchError, isPermanentCodexFailure } from '../../../../src/client/codex-rendezvous-channel.js';
import { CodexChannelError } from '../../../../src/codex-channel/codex-channel-error.js';
import { CodexRegistryRefusedError } from '../../../../src/codex-registry/registry-client.js';

/** Which failures to reopen a codex stream end a session recovery at once, and which are retried. */
describe('isPermanentCodexFailure', () => {
  it('another executor key, the executor refusing this client, a registry 403 are final', () => {
    expect(isPermanentCodexFailure(new CodexExecutorKeyMismatchError(`hyb1:${'a'.repeat(32)}`, `hyb1:${'b'.repeat(32)}`))).toBe(true);
    expect(isPermanentCodexFailure(new ClientNotAuthorizedError(`hyb1:${'c'.repeat(32)}`))).toBe(true);
    expect(isPermanentCodexFailure(new CodexRegistryRefusedError(403, 'environment_not_in_scope', 'refused'))).toBe(true);
  });

  it('the executor not registered yet, a handshake reset for another reason, an unreachable relay are retried', () => {
    expect(isPermanentCodexFailure(new CodexRegistryRefusedError(404, 'executor_unavailable', 'not yet'))).toBe(false);
    expect(isPermanentCodexFailure(new CodexChannelError('reset', 'the handshake was refused: reset noise_relay_protocol_error', 'noise_relay_protocol_error'))).toBe(false);
    expect(isPermanentCodexFailure(new Error('cannot open the rendezvous socket: ECONNREFUSED'))).toBe(false);
  });
});
