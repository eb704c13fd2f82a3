/**
 * Mixed stores on the deploy side: one ReleaseSource whose components come from different
 * sources. The release manifest (and every component not routed) is read from the main source;
 * each component type routed by `deploy.components` of .deploy-tool.yaml is read (manifest,
 * checked against the release's manifestSha256, and archive) from its own store and that store's
 * mirrors. See docs/formats.md, "Mixed stores".
 */
import type { ArchiveSource } from '../../archive/reader.js';
import type { LoadedComponent, LoadedRelease, ReleaseSource } from '../source.js';

export interface RoutedSourceOptions {
  main: ReleaseSource;
  /** Component type -> the source it is read from (with the store's name for messages). */
  routes: Map<string, { name: string; source: ReleaseSource }>;
}

export function createRoutedReleaseSource(o: RoutedSourceOptions): ReleaseSource {
  if (o.routes.size === 0) return o.main;
  const pick = (type: string): ReleaseSource => o.routes.get(type)?.source ?? o.main;
  const description = `${o.main.description}; ${[...o.routes]
    .map(([type, r]) => `${type} from store ${r.name} ${r.source.description}`)
    .join('; ')}`;
  return {
    description,
    getRelease(release): Promise<LoadedRelease> {
      return o.main.getRelease(release);
    },
    getComponent(ref, release): Promise<LoadedComponent> {
      return pick(ref.type).getComponent(ref, release);
    },
    openArchive(component, ref, release, options): Promise<ArchiveSource> {
      return pick(component.manifest.type).openArchive(component, ref, release, options);
    },
    // Transfer accounting of the source each component comes from (src/deploy/sources/s3.ts).
    async planArchive(component, options) {
      return pick(component.manifest.type).planArchive?.(component, options);
    },
    transferOf(component) {
      return pick(component.manifest.type).transferOf?.(component);
    },
  };
}
