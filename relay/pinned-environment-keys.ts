import type { BindResult, EnvironmentBindings } from './environment-bindings.js';

/**
 * Operator-pinned keys (`execrelay relay --environment-keys FILE`, lines `ENVIRONMENT_ID
 * PUBLIC_IDENTITY`) in front of a bindings store: a pinned environment accepts only its pinned key
 * (even on its first registration) and never reaches the store; every other environment is bound
 * by the store as usual. Pins change only by editing the file and restarting the relay.
 */
export class PinnedEnvironmentKeys implements EnvironmentBindings {
  constructor(
    private readonly pins: ReadonlyMap<string, string>,
    private readonly store: EnvironmentBindings,
  ) {}

  bind(environmentId: string, identity: string): Promise<BindResult> {
    const pinned = this.pins.get(environmentId);
    if (pinned !== undefined) return Promise.resolve(pinned === identity ? 'matches' : 'mismatch');
    return this.store.bind(environmentId, identity);
  }

  unbind(environmentId: string): Promise<string | null> {
    return this.store.unbind(environmentId);
  }

  async list(): Promise<Map<string, string>> {
    return new Map([...(await this.store.list()), ...this.pins]);
  }
}
