/** Any problem with a hybrid key, key file, registry key object or fingerprint string. */
export class HybridIdentityError extends Error {
  override readonly name = 'HybridIdentityError';
}
