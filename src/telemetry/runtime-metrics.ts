import v8 from 'node:v8';
import { collectDefaultMetrics, Gauge, Histogram, type Registry } from 'prom-client';
import { PACKAGE_VERSION } from '../package-version.js';

/** The app a registry belongs to (`component` label of `execrelay_build_info`). */
export const COMPONENTS = ['relay', 'agent'] as const;
export type Component = (typeof COMPONENTS)[number];

/** Name of the build info gauge, the same on the relay and the agent (told apart by `component`). */
export const BUILD_INFO_METRIC = 'execrelay_build_info';

/** prom-client's GC kinds (`kind` label of `…nodejs_gc_duration_seconds`). */
export const GC_KINDS = ['major', 'minor', 'incremental', 'weakcb'] as const;

/** V8's heap spaces as prom-client names them (`space` label): fixed for a Node build. */
export const HEAP_SPACES: readonly string[] = v8.getHeapSpaceStatistics().map((s) => s.space_name.slice(0, s.space_name.indexOf('_space')));

const NODE_VERSION = process.version;
const [NODE_MAJOR, NODE_MINOR, NODE_PATCH] = process.versions.node.split('.') as [string, string, string];

/** Label values of the build and runtime metrics: the version labels take exactly these. */
export const RUNTIME_LABEL_VALUES = {
  version: [PACKAGE_VERSION, NODE_VERSION],
  node_version: [NODE_VERSION],
  major: [NODE_MAJOR],
  minor: [NODE_MINOR],
  patch: [NODE_PATCH],
  component: COMPONENTS,
  space: HEAP_SPACES,
  kind: GC_KINDS,
} as const satisfies Record<string, readonly string[]>;

/**
 * prom-client's gauges broken down by the class name of each active handle, request and resource:
 * their label values are whatever Node and the libraries create, and the set of series moves with
 * load. Their `_total` siblings (one series each) stay.
 */
const PER_TYPE_GAUGES = ['nodejs_active_handles', 'nodejs_active_requests', 'nodejs_active_resources'] as const;

/**
 * Registers on `registry` (an app's own, never the global one):
 * - `execrelay_build_info{version, node_version, component}` = 1;
 * - prom-client's default process and Node.js runtime metrics under the app's `prefix`
 *   (`execrelay_relay_process_cpu_seconds_total`, `exec_server_nodejs_eventloop_lag_seconds`, …),
 *   without the per-type handle gauges, and with every GC kind's series created at zero, so the
 *   set of series is the same from the first scrape on.
 */
export function registerRuntimeMetrics(registry: Registry, options: { component: Component; prefix: string }): void {
  const buildInfo = new Gauge({
    name: BUILD_INFO_METRIC,
    help: 'Always 1; the labels name the running build (execrelay version, Node.js version, component).',
    labelNames: ['version', 'node_version', 'component'],
    registers: [registry],
  });
  buildInfo.set({ version: PACKAGE_VERSION, node_version: NODE_VERSION, component: options.component }, 1);

  collectDefaultMetrics({ register: registry, prefix: options.prefix });
  for (const name of PER_TYPE_GAUGES) registry.removeSingleMetric(options.prefix + name);
  const gc = registry.getSingleMetric(`${options.prefix}nodejs_gc_duration_seconds`);
  if (gc instanceof Histogram) for (const kind of GC_KINDS) gc.zero({ kind });
}
