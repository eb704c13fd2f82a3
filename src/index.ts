/**
 * deploy-tool as a library. Every operation takes an options object (with `cwd`) and returns a
 * result; none prints or exits. Errors users can hit are DeployToolError (code + hint).
 */
export { DeployToolError, isDeployToolError, type ErrorCode } from './core/errors.js';
export type { CommonOptions, ProgressEvent, Reporter } from './core/events.js';
export {
  parseConfig,
  loadConfig,
  CONFIG_FILE,
  COMPRESSIONS,
  type ProjectConfig,
  type Compression,
} from './core/config.js';
export { openProject, findProjectRoot, type Project } from './core/project.js';
export { redact } from './core/redact.js';
export { initProject, type InitOptions, type InitResult } from './ops/init.js';
export { pack, type PackOptions, type PackResult } from './ops/pack.js';
export { publish, type PublishOptions, type PublishResult } from './ops/publish.js';
export { listComponents } from './ops/components.js';
export { listReleases } from './ops/releases.js';
export {
  parseComponentManifest,
  parseComponentManifestText,
  type ComponentManifest,
  type Frame,
  type Entry,
} from './manifest/component.js';
export { parseReleaseManifest, parseReleaseManifestText, type ReleaseManifest } from './manifest/release.js';
export { readArchive, openLocalArchive, verifyArchiveDigest, type ArchiveSource } from './archive/reader.js';
export { createExtractSink, directIoEnabled } from './archive/extract.js';
export { createCodecPool, type CodecPool } from './archive/pool.js';
export type { Store, ObjectInfo, PutOptions, PutResult } from './store/types.js';
export { createFilesystemStore } from './store/drivers/filesystem.js';
export type { ReleaseSource } from './deploy/source.js';
