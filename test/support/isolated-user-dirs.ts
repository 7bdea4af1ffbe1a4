import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Vitest setup file: every test file (and every process it spawns) gets its own XDG_CONFIG_HOME and
 * XDG_STATE_HOME, so that nothing a test runs reads or writes the user's own
 * `~/.config/execrelay/client.key` (client commands default `--key` to it; `execrelay keygen`
 * without `--out` creates it) or `~/.local/state/execrelay/environment-bindings` (a relay's default
 * bindings file). Processes spawned through `test/support/cli.ts` get a fresh state home each
 * besides; a test that needs a particular one sets the variable for the process it spawns.
 */
process.env.XDG_CONFIG_HOME = mkdtempSync(path.join(os.tmpdir(), 'execrelay-config-'));
process.env.XDG_STATE_HOME = mkdtempSync(path.join(os.tmpdir(), 'execrelay-state-'));
