/**
 * A registry namespace seen through the bucket layout (src/store/bucket.ts), so that the bucket
 * ReleaseSource (src/deploy/sources/s3.ts) deploys from a registry exactly as from S3: download
 * cache, parallel range requests, resume, and mirrors in either direction (a registry mirror of
 * an S3 store, an S3 or filesystem mirror of a registry store). For writing, only the content:
 * src/registry/publish.ts uploads archives through uploadArchive() (src/store/bucket.ts), the
 * same chunking as for S3, so a new version sends only the chunks the registry lacks:
 *
 *   put blobs/sha256/HEX                  -> PUT /api/v1/blobs/HEX (a chunk; the server checks it)
 *   put archives/sha256/HEX.json (recipe) -> PUT /api/v1/recipes/HEX (the server checks that the
 *                                            chunks concatenate to HEX before it stores it)
 *
 * Manifests, releases, pointers and signatures are written by src/registry/publish.ts through
 * their own endpoints (they carry metadata and are validated there).
 *
 *   components/TYPE/VERSION/manifest.json -> GET /api/v1/namespaces/NS/components/TYPE/VERSION/manifest
 *   releases/R/release.json               -> GET /api/v1/namespaces/NS/releases/R/manifest
 *   archives/sha256/HEX.json (recipe)     -> GET /api/v1/recipes/HEX when the archive is stored as
 *                                            chunks; else synthesized: one chunk, the whole archive
 *   blobs/sha256/HEX                      -> ranges of the component's archive (counted as one
 *                                            download); a chunk of a recipe read here is the range
 *                                            of its archive it covers, so the download cache reuses
 *                                            unchanged chunks across versions exactly as with S3
 *   pointers/NAME.json                    -> GET /api/v1/namespaces/NS/pointers/NAME
 *   components/TYPE/VERSION/manifest.json.minisig
 *                                         -> GET /api/v1/namespaces/NS/components/TYPE/VERSION/signature
 *   releases/R/release.json.minisig       -> GET /api/v1/namespaces/NS/releases/R/signature
 *                                            (the detached signatures the registry keeps; absent
 *                                            when unsigned, so --require-signature refuses)
 *
 * The client is made on first use: the token is read then, from DEPLOY_TOOL_TOKEN or the file
 * written by `deploy-tool login` (src/registry/credentials.ts), and never printed.
 */
import { Readable } from 'node:stream';
import { DeployToolError } from '../core/errors.js';
import { sha256Hex } from '../core/hash.js';
import type { RegistryClient } from '../registry/client.js';
import type { ComponentManifest } from '../manifest/component.js';
import { storedArchive } from '../trust/encrypt.js';
import { RECIPE_SCHEMA_VERSION, keys, recipeSchema, type ArchiveRecipe } from './bucket.js';
import { checkKey, type ObjectInfo, type PutResult, type Store } from './types.js';

export interface RegistryLayoutStoreOptions {
  /** Registry URL; default: DEPLOY_TOOL_REGISTRY, else the last URL logged in to. */
  url?: string | undefined;
  namespace: string;
  /** A client of your own (tests, library use); else one is made from url + the saved token. */
  client?: RegistryClient | undefined;
}

export interface RegistryLayoutStore extends Store {
  readonly namespace: string;
  /** Checks the registry answers and accepts the token (used by `mirrors check`). */
  checkBucket(): Promise<void>;
}

const HEX = /^[0-9a-f]{64}$/;

const readOnly = (location: string): DeployToolError =>
  new DeployToolError('ERR_USAGE', `${location}: a registry store is written only by publish`, {
    hint: 'Publish with deploy-tool publish ... --method registry --registry URL (or --store NAME).',
  });

const putResult = (r: { status: 'created' | 'exists' }): PutResult =>
  r.status === 'created' ? { status: 'created' } : { status: 'exists' };

export function createRegistryLayoutStore(o: RegistryLayoutStoreOptions): RegistryLayoutStore {
  const ns = o.namespace;
  let client: Promise<RegistryClient> | undefined = o.client ? Promise.resolve(o.client) : undefined;
  let url = o.client?.location ?? o.url;
  const getClient = (): Promise<RegistryClient> => {
    // Loaded on first use: the HTTP client pulls in node's http, https and tls, which every
    // command that resolves stores (deploy, publish) would otherwise load for nothing.
    client ??= (async () => {
      const [{ resolveRegistry }, { createRegistryClient }] = await Promise.all([
        import('../registry/credentials.js'),
        import('../registry/client.js'),
      ]);
      const r = await resolveRegistry(o.url);
      url = r.url;
      return createRegistryClient({ url: r.url, token: r.token });
    })();
    return client;
  };
  /** archive sha256 -> component, learnt from the manifests read, so ranges are attributed downloads. */
  const archives = new Map<
    string,
    { type: string; version: string; name: string; size: number; frames: number | null }
  >();

  const learn = (text: string): void => {
    let m: ComponentManifest;
    try {
      m = JSON.parse(text) as ComponentManifest;
    } catch {
      return; // not JSON: the source's parser reports it
    }
    if (typeof m !== 'object' || m === null || typeof m.archive !== 'object' || m.archive === null) return;
    // The stored archive: the ciphertext when encrypted (its frames describe the plaintext), so
    // ranges of an encrypted component's blob are counted as its downloads too.
    const a = storedArchive(m);
    if (!m.type || !m.version || !a.sha256 || !a.name || typeof a.size !== 'number') return;
    // Frames that tile the whole archive let each range be checked frame by frame as it lands.
    let end = 0;
    for (const f of Array.isArray(m.frames) ? m.frames : []) end = f.offset === end ? end + f.size : -1;
    const frames = !m.encryption && m.frames?.length && end === a.size ? m.frames.length : null;
    archives.set(a.sha256, { type: m.type, version: m.version, name: a.name, size: a.size, frames });
  };

  /** chunk sha256 -> where it lies in its archive, learnt from the recipes read. */
  const chunkOf = new Map<string, { archive: string; offset: number; size: number }>();
  const learnRecipe = (archive: string, text: string): boolean => {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return false;
    }
    const r = recipeSchema.safeParse(raw);
    if (!r.success || r.data.archive.sha256 !== archive) return false;
    for (const c of r.data.chunks)
      if (c.sha256 !== archive) chunkOf.set(c.sha256, { archive, offset: c.offset, size: c.size });
    return true;
  };

  const blobPath = (c: RegistryClient, sha: string): string | undefined => {
    const a = archives.get(sha);
    return a ? c.archivePath(ns, a.type, a.version) : undefined;
  };

  /** Reads [offset, offset+length) of an archive; the range at 0 counts one download of it. */
  const readArchiveRange = (
    c: RegistryClient,
    sha: string,
    offset: number,
    length: number,
  ): Promise<Buffer> =>
    c.readBlobRange(sha, offset, length, { continuation: offset > 0, path: blobPath(c, sha) });

  const get = async (key: string): Promise<Buffer | undefined> => {
    const p = checkKey('registry', key).split('/');
    const c = await getClient();
    if (p[0] === 'components' && p.length === 4 && p[3] === 'manifest.json.minisig' && p[1] && p[2]) {
      const t = await c.componentSignatureText(ns, p[1], p[2]);
      return t === undefined ? undefined : Buffer.from(t);
    }
    if (p[0] === 'releases' && p.length === 3 && p[2] === 'release.json.minisig' && p[1]) {
      const t = await c.releaseSignatureText(ns, p[1]);
      return t === undefined ? undefined : Buffer.from(t);
    }
    if (p[0] === 'components' && p.length === 4 && p[3] === 'manifest.json' && p[1] && p[2]) {
      const t = await c.componentManifestText(ns, p[1], p[2]);
      if (t === undefined) return undefined;
      learn(t);
      return Buffer.from(t);
    }
    if (p[0] === 'releases' && p.length === 3 && p[2] === 'release.json' && p[1]) {
      const t = await c.releaseManifestText(ns, p[1]);
      return t === undefined ? undefined : Buffer.from(t);
    }
    if (p[0] === 'archives' && p[1] === 'sha256' && p.length === 3 && p[2]?.endsWith('.json')) {
      const sha = p[2].slice(0, -'.json'.length);
      if (!HEX.test(sha)) return undefined;
      const stored = await c.recipeText(sha);
      // A recipe the source cannot use is returned as it is: the source's check reports it.
      if (stored !== undefined) {
        learnRecipe(sha, stored);
        return Buffer.from(stored);
      }
      const known = archives.get(sha);
      const size = known?.size ?? (await c.headBlob(sha))?.size;
      if (size === undefined) return undefined;
      const recipe: ArchiveRecipe = {
        schemaVersion: RECIPE_SCHEMA_VERSION,
        kind: 'deploy-tool/archive-recipe',
        archive: { name: known?.name ?? `${sha}.tar`, size, sha256: sha },
        chunks: [{ sha256: sha, offset: 0, size, frames: known?.frames ? [0, known.frames] : null }],
      };
      return Buffer.from(`${JSON.stringify(recipe)}\n`);
    }
    if (p[0] === 'blobs' && p[1] === 'sha256' && p.length === 3 && p[2] && HEX.test(p[2])) {
      const ch = chunkOf.get(p[2]);
      if (ch) return readArchiveRange(c, ch.archive, ch.offset, ch.size);
      return c.getBlob(p[2]);
    }
    if (p[0] === 'pointers' && p.length === 2 && p[1]?.endsWith('.json')) {
      const ptr = await c.getPointer(ns, p[1].slice(0, -'.json'.length));
      if (!ptr) return undefined;
      const text = await c.releaseManifestText(ns, ptr.target);
      return Buffer.from(
        `${JSON.stringify({
          schemaVersion: 1,
          kind: 'deploy-tool/pointer',
          release: ptr.target,
          releaseSha256: sha256Hex(text ?? ''),
          updatedAt: ptr.updatedAt,
        })}\n`,
      );
    }
    return undefined;
  };

  const blobSha = (key: string): string => {
    const p = checkKey('registry', key).split('/');
    if (p.length === 3 && p[0] === 'blobs' && p[1] === 'sha256' && p[2] && HEX.test(p[2])) return p[2];
    throw readOnly(store.location);
  };

  const store: RegistryLayoutStore = {
    driver: 'registry',
    get location(): string {
      return `${url ?? 'registry (logged-in default)'} namespace ${ns}`;
    },
    namespace: ns,
    async checkBucket() {
      await (await getClient()).whoami();
    },
    async head(key): Promise<ObjectInfo | undefined> {
      const p = key.split('/');
      if (p[0] === 'blobs' && p[2] && HEX.test(p[2])) {
        const ch = chunkOf.get(p[2]);
        if (ch) return { key, size: ch.size, etag: p[2] };
        const h = await (await getClient()).headBlob(p[2]);
        return h ? { key, size: h.size, etag: p[2] } : undefined;
      }
      const data = await get(key);
      return data ? { key, size: data.length } : undefined;
    },
    get,
    async getRange(key, offset, length) {
      const p = checkKey('registry', key).split('/');
      if (p[0] === 'blobs' && p[1] === 'sha256' && p[2] && HEX.test(p[2])) {
        const c = await getClient();
        const ch = chunkOf.get(p[2]);
        // The range at 0 counts one download of the component; the others are continuations.
        return ch
          ? readArchiveRange(c, ch.archive, ch.offset + offset, length)
          : readArchiveRange(c, p[2], offset, length);
      }
      const data = await get(key);
      if (!data)
        throw new DeployToolError('ERR_ARCHIVE_MISSING', `${store.location}: ${key} not found`, {
          hint: 'Publish it to the registry first.',
        });
      return data.subarray(offset, offset + length);
    },
    async getStream(key, range) {
      const p = checkKey('registry', key).split('/');
      if (p[0] === 'blobs' && p[2] && HEX.test(p[2])) {
        const ch = chunkOf.get(p[2]);
        if (ch)
          return (await getClient()).blobStream(ch.archive, {
            offset: ch.offset + (range?.offset ?? 0),
            length: range?.length ?? ch.size,
          });
        return (await getClient()).blobStream(p[2], range);
      }
      const data = await get(key);
      if (!data) throw Object.assign(new Error(`${store.location}: ${key} not found`), { code: 'ENOENT' });
      return Readable.from([range ? data.subarray(range.offset, range.offset + range.length) : data]);
    },
    async put(key, data): Promise<PutResult> {
      const p = checkKey('registry', key).split('/');
      const c = await getClient();
      const sha = p[2]?.endsWith('.json') ? p[2].slice(0, -'.json'.length) : p[2];
      if (p.length === 3 && p[1] === 'sha256' && sha && HEX.test(sha)) {
        const buf = typeof data === 'string' ? Buffer.from(data) : data;
        if (p[0] === 'blobs' && !p[2]?.endsWith('.json')) return putResult(await c.uploadBlob(sha, buf));
        if (p[0] === 'archives' && p[2]?.endsWith('.json'))
          return putResult(await c.putRecipe(sha, buf.toString('utf8')));
      }
      throw readOnly(store.location);
    },
    async putFile(key, path): Promise<PutResult> {
      return putResult(await (await getClient()).uploadBlobFile(blobSha(key), path));
    },
    async putFileRange(key, path, range): Promise<PutResult> {
      return putResult(await (await getClient()).uploadBlobFile(blobSha(key), path, undefined, range));
    },
    async list(prefix) {
      const c = await getClient();
      if (prefix.startsWith('releases/')) {
        return (await c.listReleases(ns)).map((r) => ({
          key: keys.release(r.release),
          size: 0,
          etag: r.manifestSha256,
        }));
      }
      if (prefix.startsWith('components/')) {
        return (await c.listComponents(ns))
          .map((x) => ({
            key: keys.component(x.type, x.version),
            size: x.manifestSize,
            etag: x.manifestSha256,
          }))
          .filter((x) => x.key.startsWith(prefix));
      }
      return [];
    },
    delete() {
      return Promise.reject(readOnly(store.location));
    },
  };
  return store;
}
