import type { EnvPolicy } from '../src/protocol/process.js';

/** Variables kept by `inherit: "core"`. */
const CORE_VARIABLES = ['HOME', 'LOGNAME', 'PATH', 'SHELL', 'USER', 'USERNAME', 'TMPDIR', 'TEMP', 'TMP', 'LANG', 'TERM'];
/** Patterns dropped from an inherited environment unless `ignoreDefaultExcludes` (as codex does). */
const DEFAULT_EXCLUDES = ['*KEY*', '*SECRET*', '*TOKEN*'];

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, 'i');
}

function matchesAny(name: string, patterns: RegExp[]): boolean {
  return patterns.some((p) => p.test(name));
}

/**
 * The child's environment. Without a policy it is exactly `env` (codex semantics). With one, the
 * agent's own environment is filtered by the policy, then `policy.set`, then `env` are laid over it.
 */
export function buildChildEnvironment(
  env: Record<string, string>,
  policy: EnvPolicy | null | undefined,
  agentEnvironment: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  if (!policy) return { ...env };
  const result: Record<string, string> = {};
  if (policy.inherit !== 'none') {
    for (const [name, value] of Object.entries(agentEnvironment)) {
      if (value === undefined) continue;
      if (policy.inherit === 'core' && !CORE_VARIABLES.includes(name)) continue;
      result[name] = value;
    }
  }
  const excludes = [...(policy.ignoreDefaultExcludes ? [] : DEFAULT_EXCLUDES), ...(policy.exclude ?? [])].map(globToRegExp);
  for (const name of Object.keys(result)) if (matchesAny(name, excludes)) delete result[name];
  Object.assign(result, policy.set ?? {});
  if (policy.includeOnly && policy.includeOnly.length > 0) {
    const keep = policy.includeOnly.map(globToRegExp);
    for (const name of Object.keys(result)) if (!matchesAny(name, keep)) delete result[name];
  }
  return Object.assign(result, env);
}
