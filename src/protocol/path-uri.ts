import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

/**
 * Paths cross the wire as `file://` URIs (as in the codex exec-server). A native absolute path such
 * as `/tmp/x` is rejected, and so is anything that is not an absolute local file URI.
 */
export function parseFileUri(value: string): { ok: true; path: string } | { ok: false; reason: string } {
  if (!value.startsWith('file://')) {
    return {
      ok: false,
      reason: path.isAbsolute(value)
        ? 'expected a file:// URI, got a native path'
        : 'expected an absolute file:// URI',
    };
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, reason: 'not a valid file:// URI' };
  }
  if (url.host !== '' && url.host !== 'localhost') {
    return { ok: false, reason: 'file:// URI must not name a remote host' };
  }
  if (url.search !== '' || url.hash !== '') {
    return { ok: false, reason: 'file:// URI must not carry a query or fragment' };
  }
  let native: string;
  try {
    native = fileURLToPath(url);
  } catch (err) {
    return { ok: false, reason: `not a valid file:// URI (${(err as Error).message})` };
  }
  if (native.includes('\0')) return { ok: false, reason: 'path contains a NUL byte' };
  return { ok: true, path: native };
}

/** Formats a native absolute path as the `file://` URI the wire carries. */
export function toFileUri(nativePath: string): string {
  if (!path.isAbsolute(nativePath)) throw new Error(`not an absolute path: ${nativePath}`);
  return pathToFileURL(nativePath).href;
}
