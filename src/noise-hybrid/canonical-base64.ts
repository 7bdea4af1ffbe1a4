/**
 * Strict standard base64 (RFC 4648 §4, padded) of an exact number of bytes, as the registry key
 * object and the hybrid key file carry keys: the text must be exactly what Buffer would write for
 * those bytes (no whitespace, no URL alphabet, no missing or extra padding). The length is checked
 * first, so a huge string costs nothing.
 */
export function isCanonicalBase64Of(text: string, bytes: number): boolean {
  if (text.length !== Math.ceil(bytes / 3) * 4) return false;
  const decoded = Buffer.from(text, 'base64');
  return decoded.length === bytes && decoded.toString('base64') === text;
}
