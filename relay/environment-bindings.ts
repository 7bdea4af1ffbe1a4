import { isHybridFingerprint, parseHybridFingerprint } from '../src/noise-hybrid/hybrid-fingerprint.js';
import { isPublicIdentity, parsePublicIdentity } from '../src/noise/identity.js';

/**
 * What a registration did to an environment's binding: the environment was free and is now bound
 * to the key (`bound`), was already bound to it (`matches`), is bound to another key (`mismatch`:
 * refused, nothing changes), or was free but the store is full (`full`: refused).
 */
export type BindResult = 'bound' | 'matches' | 'mismatch' | 'full';

/**
 * Environment id → the agent identity that owns it. The relay binds an environment to the
 * identity that first registered it and refuses any other key from then on; the operator releases
 * a binding (`execrelay relay unbind ENV`) when an agent's key changes on purpose.
 *
 * Stores: {@link MemoryBindings} (the in-process `RelayServer` default), `BindingsFile` (a single
 * relay from the CLI: a state file), `FleetBindings` (a fleet: a NATS KV bucket), and
 * `PinnedEnvironmentKeys` in front of any of them (operator-pinned keys).
 */
export interface EnvironmentBindings {
  /** Binds `environmentId` to `identity` unless it is bound already (first registration wins). Rejects when the store cannot answer. */
  bind(environmentId: string, identity: string): Promise<BindResult>;
  /** Forgets the binding; resolves with the identity it was bound to (null: it was not bound). */
  unbind(environmentId: string): Promise<string | null>;
  /** Every binding now. */
  list(): Promise<Map<string, string>>;
}

/** Bindings in memory, at most `maxBindings` (lost when the process ends). */
export class MemoryBindings implements EnvironmentBindings {
  private readonly bindings = new Map<string, string>();

  constructor(private readonly maxBindings: number) {}

  async bind(environmentId: string, identity: string): Promise<BindResult> {
    const bound = this.bindings.get(environmentId);
    if (bound !== undefined) return bound === identity ? 'matches' : 'mismatch';
    if (this.bindings.size >= this.maxBindings) return 'full';
    this.bindings.set(environmentId, identity);
    return 'bound';
  }

  async unbind(environmentId: string): Promise<string | null> {
    const bound = this.bindings.get(environmentId) ?? null;
    this.bindings.delete(environmentId);
    return bound;
  }

  async list(): Promise<Map<string, string>> {
    return new Map(this.bindings);
  }
}

/**
 * What an environment can be bound to: an execrelay agent's public identity (`12D3KooW…`) or a
 * codex executor's hybrid key fingerprint (`hyb1:…`, `relay/codex-registry.ts`).
 */
export function isBindableIdentity(identity: string): boolean {
  return isPublicIdentity(identity) || isHybridFingerprint(identity);
}

/** A bound identity as read from a bindings store, in canonical form. @throws naming what is wrong. */
export function parseBindableIdentity(text: string): string {
  return text.startsWith('hyb1:') ? parseHybridFingerprint(text) : parsePublicIdentity(text).toString();
}
