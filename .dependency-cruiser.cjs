/**
 * The one-way layout, checked on every `npm test` (`npm run check:layers`):
 *
 *   cli/  →  relay/, executor-agent/  →  src/
 *
 * `cli/` is the composition root; `relay/` and `executor-agent/` are the two apps and do not
 * import each other; `src/` is the library and imports none of them. Production code imports
 * neither `test/` nor `bench/`; `bench/` may import the fixtures of `test/support/`, never the
 * other way round. No import cycle anywhere (type-only imports count too).
 * See docs/architecture.md.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'library-imports-no-app',
      comment: 'src/ is the library: it must not import the CLI, the apps, tests or benches',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(cli|relay|executor-agent|test|bench)/' },
    },
    {
      name: 'apps-import-no-cli',
      comment: 'the apps sit below the CLI (the composition root)',
      severity: 'error',
      from: { path: '^(relay|executor-agent)/' },
      to: { path: '^cli/' },
    },
    {
      name: 'relay-imports-no-agent',
      comment: 'the relay and the agent are separate apps; what both need lives in src/',
      severity: 'error',
      from: { path: '^relay/' },
      to: { path: '^executor-agent/' },
    },
    {
      name: 'agent-imports-no-relay',
      comment: 'the relay and the agent are separate apps; what both need lives in src/',
      severity: 'error',
      from: { path: '^executor-agent/' },
      to: { path: '^relay/' },
    },
    {
      name: 'production-imports-no-tests',
      comment: 'what ships does not import tests or benches',
      severity: 'error',
      from: { path: '^(cli|src|relay|executor-agent)/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'tests-import-no-bench',
      comment: 'bench/ may import test/support/, never the other way round',
      severity: 'error',
      from: { path: '^test/' },
      to: { path: '^bench/' },
    },
    {
      name: 'bench-imports-only-test-support',
      comment: 'bench/ may use the shared fixtures of test/support/, not test suites',
      severity: 'error',
      from: { path: '^bench/' },
      to: { path: '^test/', pathNot: '^test/support/' },
    },
    {
      name: 'no-cycles',
      comment: 'an import cycle ties modules together in both directions',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-unresolvable-imports',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules|\\.cache)/|^test/fixtures/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json', '.d.ts'],
    },
  },
};
