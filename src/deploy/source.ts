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
  /**
   * Random access to a component's archive bytes. With `options.frames`, only those frames will be
   * read (incremental deploys): a source that downloads may fetch only the bytes that hold them.
   */
  openArchive(
    component: LoadedComponent,
    ref?: ReleaseComponent,
    release?: string,
    options?: ArchiveOpenOptions,
  ): Promise<ArchiveSource>;
  /**
   * Optional (sources that download, e.g. bucket stores): what openArchive would fetch, reading
   * no archive content and changing nothing (dry runs). undefined: no plan for this component
   * (a dry run then opens the archive to check its size).
   */
  planArchive?(
    component: LoadedComponent,
    options?: ArchiveOpenOptions,
  ): Promise<ArchiveTransfer | undefined>;
  /** Optional: what the last openArchive of this component fetched, and from where. */
  transferOf?(component: LoadedComponent): ArchiveTransfer | undefined;
}

export interface ArchiveOpenOptions {
  /**
   * Indexes (into the manifest's `frames`) of the only frames the reader will read; undefined: the
   * whole archive. Reading other frames from the returned ArchiveSource may fail (their bytes were
   * not fetched) but can never succeed with wrong bytes, since readers check every frame's sha256.
   */
  frames?: readonly number[] | undefined;
}

/** Bytes of one archive: fetched, or already in the local cache, and which sources served it. */
export interface ArchiveTransfer {
  /** Stored archive size (ciphertext when encrypted). */
  archiveBytes: number;
  chunks: number;
  /** Chunks entirely in the local cache. */
  chunksCached: number;
  /** Bytes the cache had: whole chunks, and ranges of interrupted downloads. */
  bytesFromCache: number;
  /** Bytes that had to be (in a plan: would be) fetched from the stores. */
  bytesToDownload: number;
  /** Bytes actually fetched (0 in a plan; more than bytesToDownload after a mirror refetch). */
  bytesDownloaded: number;
  /** Range requests made (in a plan: that would be made). */
  requests: number;
  /** Where the bytes came from: store names (the store itself or a mirror), and "cache". */
  servedBy: string[];
}
