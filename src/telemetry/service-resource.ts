import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  processDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  type Resource,
} from '@opentelemetry/resources';
import type { Attributes } from '@opentelemetry/api';
import { PACKAGE_VERSION } from '../package-version.js';
import type { ServiceName } from './labels.js';

/**
 * What the process and host detectors may contribute. They also report the pid, the command line
 * (a client's `execrelay exec -- COMMAND` would put the user's command in every trace), the
 * executable path, the owner and the host's name and id; those are left out. An operator who wants
 * the host named adds `host.name=…` to `OTEL_RESOURCE_ATTRIBUTES`.
 */
export const PLATFORM_RESOURCE_ATTRIBUTES: readonly string[] = ['process.runtime.name', 'process.runtime.version', 'process.runtime.description', 'host.arch'];

async function settled(resource: Resource): Promise<Attributes> {
  await resource.waitForAsyncAttributes?.();
  return resource.attributes;
}

/**
 * The resource of a service's spans, from OpenTelemetry's own detectors, in increasing precedence:
 * the SDK's defaults (`telemetry.sdk.*`); `service.name` (ours) and `service.version` (the
 * package's); `service.instance.id` (a random UUID per process, `serviceInstanceIdDetector`); the
 * runtime name and version and the host's architecture (`processDetector`, `hostDetector`, filtered
 * to `PLATFORM_RESOURCE_ATTRIBUTES`); and the operator's `OTEL_RESOURCE_ATTRIBUTES` and
 * `OTEL_SERVICE_NAME` (`envDetector`), which override any of the above.
 */
export async function detectServiceResource(serviceName: ServiceName, serviceVersion: string = PACKAGE_VERSION): Promise<Resource> {
  const allowed = new Set(PLATFORM_RESOURCE_ATTRIBUTES);
  const platform = await settled(detectResources({ detectors: [processDetector, hostDetector] }));
  const instance = await settled(detectResources({ detectors: [serviceInstanceIdDetector] }));
  const operator = await settled(detectResources({ detectors: [envDetector] }));
  return defaultResource()
    .merge(resourceFromAttributes({ 'service.name': serviceName, 'service.version': serviceVersion }))
    .merge(resourceFromAttributes(instance))
    .merge(resourceFromAttributes(Object.fromEntries(Object.entries(platform).filter(([key]) => allowed.has(key)))))
    .merge(resourceFromAttributes(operator));
}
