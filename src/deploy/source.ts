/**
 * Where a deploy reads releases, component manifests and archives from. The deploy engine only
 * talks to a ReleaseSource; each publishing method (filesystem release folders, S3 buckets, the
 * registry) provides one, built on a Store driver.
 */
import type { ArchiveSource } from '../archive/reader.js';
import type { ComponentRef } from '../core/validate.js';
import type { ComponentManifest } from '../manifest/component.js';
import type { ReleaseComponent, ReleaseManifest } from '../manifest/release.js';

export interface LoadedRelease {
  manifest: ReleaseManifest;
  /** Exact bytes of the release manifest (what digests and signatures cover). */
  text: string;
  /** Text of the detached signature `release.json.minisig`, when the release is signed (src/trust). */
  signature?: string | undefined;
}

export interface LoadedComponent {
  manifest: ComponentManifest;
  /** Exact bytes of the component manifest; its sha256 must equal the release's manifestSha256. */
  text: string;
  /** Text of `<manifest>.minisig` next to a bare component's manifest, if any (src/trust). */
  signature?: string | undefined;
}

export interface ReleaseSource {
  /** Human-readable location for messages ("filesystem /opt/deployments/releases"). */
  readonly description: string;
  /** Throws DeployToolError ERR_RELEASE_NOT_FOUND when absent. */
  getRelease(release: string): Promise<LoadedRelease>;
  /**
   * A component of a release (checked against the release's manifestSha256), or a bare
   * TYPE:VERSION for selective deploys. Throws ERR_COMPONENT_NOT_FOUND when absent.
   */
  getComponent(ref: ReleaseComponent | ComponentRef, release?: string): Promise<LoadedComponent>;
  /** Random access to a component's archive bytes. */
  openArchive(component: LoadedComponent, ref?: ReleaseComponent, release?: string): Promise<ArchiveSource>;
}
