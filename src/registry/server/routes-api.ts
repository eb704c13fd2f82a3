/** The versioned JSON API (`/api/v1/...`), plus /healthz, /readyz and /metrics. See docs/api.md. */
import * as z from 'zod';
import { sha256Hex } from '../../core/hash.js';
import { parseComponentManifestText } from '../../manifest/component.js';
import { parseReleaseManifestText } from '../../manifest/release.js';
import { toolVersion } from '../../core/version.js';
import type { Route, RouteContext, RegistryApp } from './app.js';
import {
  allowedNamespaces,
  can,
  generateToken,
  hashToken,
  publicToken,
  rankOf,
  scopeWithin,
} from './auth.js';
import { storedArchive } from '../../trust/encrypt.js';
import { blobKey, receiveBlob, receiveRecipe, resolveContent, sendRecipe, serveBlob } from './content.js';
import { HttpError, readBody, readJson, sendJson, sendText } from './http.js';
import type { ComponentMetadata, ComponentRow, ReleaseRow, Role } from './repo/types.js';
import {
  deleteSignature,
  receiveSignature,
  sendSignature,
  statusOf,
  type SignedSubject,
} from './signatures.js';

const safeText = (max: number) =>
  z
    .string()
    .max(max)
    // eslint-disable-next-line no-control-regex
    .refine((s) => !/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(s), 'contains a control character');

export const metadataSchema = z
  .object({
    description: safeText(4096).nullable().optional(),
    author: safeText(256).nullable().optional(),
    license: safeText(128).nullable().optional(),
    framework: safeText(64).nullable().optional(),
    tags: z
      .array(
        z
          .string()
          .min(1)
          .max(64)
          .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'tags are letters, digits, ".", "_", "+" and "-"'),
      )
      .max(32)
      .optional(),
  })
  .strict();

const componentBodySchema = z
  .object({ manifest: z.string().min(2), metadata: metadataSchema.optional() })
  .strict();

const tokenBodySchema = z
  .object({
    name: safeText(128).min(1),
    role: z.enum(['reader', 'publisher', 'admin']),
    namespaces: z
      .array(z.string().regex(/^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$/, 'a namespace name or "*"'))
      .min(1)
      .max(100),
    expiresInDays: z.number().positive().max(3650).optional(),
  })
  .strict();

const pointerBodySchema = z.object({ target: z.string().min(1).max(128) }).strict();

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new HttpError(
      'ERR_INVALID_BODY',
      `${issue?.path.join('.') || '(body)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return r.data;
}

function limitOf(ctx: RouteContext, def = 100, max = 1000): number {
  const v = ctx.query.get('limit');
  if (v === null) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new HttpError('ERR_BAD_REQUEST', `limit must be a whole number from 1 to ${max}`);
  return n;
}

function isoParam(ctx: RouteContext, name: string): string | undefined {
  const v = ctx.query.get(name);
  if (v === null || v === '') return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new HttpError('ERR_BAD_REQUEST', `${name} must be a date (ISO 8601)`);
  return new Date(t).toISOString();
}

export function componentJson(c: ComponentRow, extra: Record<string, unknown> = {}) {
  return {
    namespace: c.namespace,
    type: c.type,
    version: c.version,
    manifestSha256: c.manifestSha256,
    manifestSize: c.manifestSize,
    archive: {
      name: c.archiveName,
      sha256: c.archiveSha256,
      size: c.archiveSize,
      compression: c.compression,
    },
    files: c.files,
    totalSize: c.totalSize,
    metadata: c.metadata,
    createdAt: c.createdAt,
    publishedBy: c.publishedBy,
    ...extra,
  };
}

export function releaseJson(r: ReleaseRow, extra: Record<string, unknown> = {}) {
  return {
    namespace: r.namespace,
    release: r.release,
    manifestSha256: r.manifestSha256,
    notes: r.notes,
    components: r.components,
    createdAt: r.createdAt,
    publishedBy: r.publishedBy,
    ...extra,
  };
}

async function getComponentOr404(app: RegistryApp, ctx: RouteContext): Promise<ComponentRow> {
  const { ns = '', type = '', version = '' } = ctx.params;
  const c = await app.repo.getComponent(ns, type, version);
  if (!c) throw new HttpError('ERR_NOT_FOUND', `component ${type}:${version} is not in namespace "${ns}"`);
  return c;
}

async function getReleaseOr404(app: RegistryApp, ctx: RouteContext): Promise<ReleaseRow> {
  const { ns = '', release = '' } = ctx.params;
  const r = await app.repo.getRelease(ns, release);
  if (!r) throw new HttpError('ERR_NOT_FOUND', `release ${release} is not in namespace "${ns}"`);
  return r;
}

export const componentSubject = (c: ComponentRow): SignedSubject => ({
  kind: 'component',
  ns: c.namespace,
  type: c.type,
  version: c.version,
  manifestSha256: c.manifestSha256,
});

export const releaseSubject = (r: ReleaseRow): SignedSubject => ({
  kind: 'release',
  ns: r.namespace,
  release: r.release,
  manifestSha256: r.manifestSha256,
});

/** The `encryption` summary of a component manifest (null: the archive is stored in plaintext). */
export function encryptionOf(
  text: Buffer | undefined,
): { format: 'age'; recipients: string[]; passphrase: boolean } | null {
  if (!text) return null;
  try {
    const e = parseComponentManifestText(text.toString('utf8'), 'manifest').encryption;
    return e ? { format: e.format, recipients: e.recipients, passphrase: e.passphrase } : null;
  } catch {
    return null;
  }
}

/**
 * Who may read content `sha`: the namespaces holding it that the token may read. Whoever holds the
 * bytes knows their sha256: publishers may check existence (HEAD) of any content, to skip uploads.
 * Reading content needs a namespace that holds it, except for content not yet part of any
 * component (visible to publishers, who upload it).
 */
async function contentReaders(
  ctx: RouteContext,
  app: RegistryApp,
  sha: string,
): Promise<{ namespace: string; type: string; version: string; isArchive: boolean }[]> {
  const refs = await app.repo.blobNamespaces(sha);
  const readable = refs.filter((r) => can(ctx.principal, 'read', r.namespace));
  if (readable.length === 0) {
    const publisher = await app.authorize(ctx, 'write', 'any');
    if (!(ctx.method === 'HEAD' && publisher)) {
      if (refs.length > 0) {
        app.metrics.authFailure('forbidden');
        throw new HttpError('ERR_FORBIDDEN', 'this token may not read the namespaces that hold this content');
      }
      if (!publisher) throw new HttpError('ERR_NOT_FOUND', `no content with sha256 ${sha}`);
    }
  }
  return readable;
}

async function manifestBytes(app: RegistryApp, sha256: string): Promise<Buffer> {
  const data = await app.store.get(blobKey(sha256));
  if (!data) {
    if (!(await app.storeReady()))
      throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    throw new HttpError('ERR_NOT_FOUND', 'the manifest content is missing from the store');
  }
  return data;
}

/** Sends the exact bytes of a stored manifest (content-addressed, so immutable). */
async function sendManifest(ctx: RouteContext, app: RegistryApp, sha256: string): Promise<void> {
  const etag = `"${sha256}"`;
  if (ctx.req.headers['if-none-match'] === etag) {
    ctx.res.writeHead(304, { etag });
    ctx.res.end();
    return;
  }
  const data = await app.store.get(blobKey(sha256));
  if (!data) {
    if (!(await app.storeReady()))
      throw new HttpError('ERR_STORE_UNAVAILABLE', 'the content store is unavailable');
    throw new HttpError('ERR_NOT_FOUND', 'the manifest content is missing from the store');
  }
  ctx.res.writeHead(200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(data.length),
    etag,
    'cache-control': `${app.options.allowAnonymousRead ? 'public' : 'private'}, max-age=31536000, immutable`,
  });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : data);
}

function pointerEtag(revision: number): string {
  return `"${revision}"`;
}

function parseRevision(header: string | undefined): number | undefined {
  if (!header) return undefined;
  const m = /^"?(\d+)"?$/.exec(header.trim());
  if (!m) throw new HttpError('ERR_BAD_REQUEST', 'If-Match must be a pointer revision, as in the ETag');
  return Number(m[1]);
}

export const apiRoutes: Route[] = [
  {
    method: 'GET',
    path: '/healthz',
    need: { kind: 'public' },
    handle(ctx) {
      sendJson(ctx.res, 200, { status: 'ok', version: toolVersion() });
      return Promise.resolve();
    },
  },
  {
    method: 'GET',
    path: '/readyz',
    need: { kind: 'public' },
    async handle(ctx, app) {
      const [db, store] = await Promise.all([
        app.repo.ping().then(
          () => true,
          () => false,
        ),
        app.storeReady(),
      ]);
      const ok = db && store;
      sendJson(ctx.res, ok ? 200 : 503, {
        status: ok ? 'ready' : 'unavailable',
        checks: { database: db ? 'ok' : 'unavailable', store: store ? 'ok' : 'unavailable' },
      });
    },
  },
  {
    method: 'GET',
    path: '/metrics',
    need: { kind: 'public' },
    async handle(ctx, app) {
      if (
        !app.options.publicMetrics &&
        ctx.principal.kind === 'anonymous' &&
        !app.options.allowAnonymousRead
      ) {
        app.metrics.authFailure('missing');
        throw new HttpError(
          'ERR_UNAUTHENTICATED',
          '/metrics needs a token (or start the server with --public-metrics)',
          {
            'www-authenticate': 'Bearer realm="deploy-tool"',
          },
        );
      }
      if (!app.options.publicMetrics && !(await app.authorize(ctx, 'read', '*'))) {
        app.metrics.authFailure('forbidden');
        throw new HttpError('ERR_FORBIDDEN', '/metrics needs a token that may read every namespace');
      }
      sendText(ctx.res, 200, app.metrics.render(), 'text/plain; version=0.0.4; charset=utf-8', {
        'cache-control': 'no-store',
      });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/whoami',
    need: { kind: 'authenticated' },
    handle(ctx) {
      const p = ctx.principal;
      sendJson(
        ctx.res,
        200,
        p.kind === 'anonymous'
          ? { kind: 'anonymous', role: 'reader', namespaces: ['*'] }
          : {
              kind: 'token',
              id: p.token.id,
              name: p.token.name,
              role: p.token.role,
              namespaces: p.token.namespaces,
              expiresAt: p.token.expiresAt,
            },
      );
      return Promise.resolve();
    },
  },

  // ---- content ----
  {
    method: 'GET',
    path: '/api/v1/blobs/:sha',
    need: { kind: 'action', action: 'read', ns: 'any' },
    async handle(ctx, app) {
      const sha = ctx.params.sha ?? '';
      const readable = await contentReaders(ctx, app, sha);
      const archive = readable.find((r) => r.isArchive);
      await serveBlob(ctx, app, sha, { attribution: archive });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/recipes/:sha',
    need: { kind: 'action', action: 'read', ns: 'any' },
    async handle(ctx, app) {
      const sha = ctx.params.sha ?? '';
      await contentReaders(ctx, app, sha);
      await sendRecipe(ctx, app, sha);
    },
  },
  {
    method: 'PUT',
    path: '/api/v1/blobs/:sha',
    need: { kind: 'action', action: 'write', ns: 'any' },
    handle: (ctx, app) => receiveBlob(ctx, app, ctx.params.sha ?? ''),
  },
  {
    method: 'PUT',
    path: '/api/v1/recipes/:sha',
    need: { kind: 'action', action: 'write', ns: 'any' },
    handle: (ctx, app) => receiveRecipe(ctx, app, ctx.params.sha ?? ''),
  },

  // ---- components ----
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/components',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const type = ctx.query.get('type') ?? undefined;
      const items = await app.repo.listComponents({
        namespaces: null,
        namespace: ctx.params.ns ?? '',
        ...(type ? { type } : {}),
        limit: limitOf(ctx, 100, 10_000),
      });
      sendJson(ctx.res, 200, { components: items.map((c) => componentJson(c)) });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/components/:type/:version',
    need: { kind: 'action', action: 'read', ns: 'any' },
    async handle(ctx, app) {
      const items = await app.repo.listComponents({
        namespaces: allowedNamespaces(ctx.principal, 'read'),
        type: ctx.params.type ?? '',
        version: ctx.params.version ?? '',
        limit: 100,
      });
      sendJson(ctx.res, 200, { components: items.map((c) => componentJson(c)) });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/components/:type/:version',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const c = await getComponentOr404(app, ctx);
      const [downloads, releases] = await Promise.all([
        app.repo.downloadsOf(c.namespace, c.type, c.version),
        app.repo.releasesUsing(c.namespace, c.type, c.version),
      ]);
      const text = await app.store.get(blobKey(c.manifestSha256));
      const signature = await statusOf(app, componentSubject(c), text);
      sendJson(
        ctx.res,
        200,
        componentJson(c, { downloads, releases, signature, encryption: encryptionOf(text) }),
      );
    },
  },
  {
    method: 'PUT',
    path: '/api/v1/namespaces/:ns/components/:type/:version',
    need: { kind: 'action', action: 'write', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', type = '', version = '' } = ctx.params;
      const body = parse(componentBodySchema, await readJson(ctx.req, app.options.maxJsonBytes));
      const where = `component ${type}:${version}`;
      const manifest = parseComponentManifestText(body.manifest, where);
      if (manifest.type !== type || manifest.version !== version)
        throw new HttpError(
          'ERR_COMPONENT_MISMATCH',
          `the manifest is for ${manifest.type}:${manifest.version}, not ${type}:${version}`,
        );
      const manifestSha256 = sha256Hex(body.manifest);
      const existing = await app.repo.getComponent(ns, type, version);
      if (existing) {
        if (existing.manifestSha256 === manifestSha256) {
          sendJson(ctx.res, 200, componentJson(existing, { status: 'unchanged' }));
          return;
        }
        throw new HttpError(
          'ERR_COMPONENT_EXISTS',
          `${where} is already published in "${ns}" with other content`,
        );
      }
      // The stored archive: the ciphertext when the component is encrypted (the manifest keeps the
      // plaintext's digests too, checked by the deploy after decryption).
      const stored = storedArchive(manifest);
      const archive = await resolveContent(app, stored.sha256);
      if (!archive)
        throw new HttpError(
          'ERR_BLOB_MISSING',
          `upload the archive first: PUT /api/v1/blobs/${stored.sha256} (or its chunks, then PUT /api/v1/recipes/${stored.sha256})`,
        );
      if (archive.size !== stored.size)
        throw new HttpError(
          'ERR_BLOB_MISSING',
          `the stored archive has ${archive.size} bytes, the manifest says ${stored.size}`,
        );
      await app.store.put(blobKey(manifestSha256), body.manifest, { ifNoneMatch: true });
      const m = body.metadata ?? {};
      const metadata: ComponentMetadata = {
        description: m.description ?? null,
        author: m.author ?? null,
        license: m.license ?? null,
        framework: m.framework ?? null,
        tags: [...new Set(m.tags ?? [])],
      };
      const row: ComponentRow = {
        namespace: ns,
        type,
        version,
        manifestSha256,
        manifestSize: Buffer.byteLength(body.manifest),
        archiveSha256: stored.sha256,
        archiveSize: stored.size,
        archiveName: stored.name,
        compression: manifest.archive.compression,
        files: manifest.summary.files,
        totalSize: manifest.summary.totalSize,
        metadata,
        createdAt: app.now().toISOString(),
        publishedBy: ctx.principal.label,
      };
      const r = await app.repo.insertComponent(row);
      if (r === 'exists') {
        const now = await app.repo.getComponent(ns, type, version);
        if (now?.manifestSha256 === manifestSha256) {
          sendJson(ctx.res, 200, componentJson(now, { status: 'unchanged' }));
          return;
        }
        throw new HttpError(
          'ERR_COMPONENT_EXISTS',
          `${where} was published in "${ns}" by someone else meanwhile`,
        );
      }
      await app.audit(ctx, 'component.publish', ns, `${type}:${version}`, {
        manifestSha256,
        archiveSha256: row.archiveSha256,
        archiveSize: row.archiveSize,
      });
      sendJson(ctx.res, 201, componentJson(row, { status: 'created' }));
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/namespaces/:ns/components/:type/:version',
    need: { kind: 'action', action: 'admin', ns: ':ns' },
    async handle(ctx, app) {
      const c = await getComponentOr404(app, ctx);
      const users = await app.repo.releasesUsing(c.namespace, c.type, c.version);
      if (users.length > 0)
        throw new HttpError(
          'ERR_IN_USE',
          `${c.type}:${c.version} is part of release(s) ${users.join(', ')}; delete those first`,
        );
      await app.repo.deleteComponent(c.namespace, c.type, c.version);
      await app.audit(ctx, 'component.delete', c.namespace, `${c.type}:${c.version}`, {
        manifestSha256: c.manifestSha256,
      });
      sendJson(ctx.res, 200, { status: 'deleted' });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/components/:type/:version/manifest',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const c = await getComponentOr404(app, ctx);
      await sendManifest(ctx, app, c.manifestSha256);
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/components/:type/:version/archive',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const c = await getComponentOr404(app, ctx);
      await serveBlob(ctx, app, c.archiveSha256, {
        attribution: { namespace: c.namespace, type: c.type, version: c.version },
        filename: c.archiveName,
      });
    },
  },

  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/components/:type/:version/signature',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      await sendSignature(ctx, app, componentSubject(await getComponentOr404(app, ctx)));
    },
  },
  {
    method: 'PUT',
    path: '/api/v1/namespaces/:ns/components/:type/:version/signature',
    need: { kind: 'action', action: 'write', ns: ':ns' },
    async handle(ctx, app) {
      const c = await getComponentOr404(app, ctx);
      await receiveSignature(ctx, app, componentSubject(c), await manifestBytes(app, c.manifestSha256));
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/namespaces/:ns/components/:type/:version/signature',
    need: { kind: 'action', action: 'admin', ns: ':ns' },
    async handle(ctx, app) {
      await deleteSignature(ctx, app, componentSubject(await getComponentOr404(app, ctx)));
    },
  },

  // ---- releases ----
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/releases',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const items = await app.repo.listReleases({
        namespaces: null,
        namespace: ctx.params.ns ?? '',
        limit: limitOf(ctx, 100, 10_000),
      });
      sendJson(ctx.res, 200, { releases: items.map((r) => releaseJson(r)) });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/releases/:release',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const r = await getReleaseOr404(app, ctx);
      const pointers = (await app.repo.listPointers(r.namespace))
        .filter((p) => p.target === r.release)
        .map((p) => p.name);
      const signature = await statusOf(app, releaseSubject(r));
      sendJson(ctx.res, 200, releaseJson(r, { pointers, signature }));
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/releases/:release/manifest',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const r = await getReleaseOr404(app, ctx);
      await sendManifest(ctx, app, r.manifestSha256);
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/releases/:release/signature',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      await sendSignature(ctx, app, releaseSubject(await getReleaseOr404(app, ctx)));
    },
  },
  {
    method: 'PUT',
    path: '/api/v1/namespaces/:ns/releases/:release/signature',
    need: { kind: 'action', action: 'write', ns: ':ns' },
    async handle(ctx, app) {
      const r = await getReleaseOr404(app, ctx);
      await receiveSignature(ctx, app, releaseSubject(r), await manifestBytes(app, r.manifestSha256));
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/namespaces/:ns/releases/:release/signature',
    need: { kind: 'action', action: 'admin', ns: ':ns' },
    async handle(ctx, app) {
      await deleteSignature(ctx, app, releaseSubject(await getReleaseOr404(app, ctx)));
    },
  },
  {
    method: 'PUT',
    path: '/api/v1/namespaces/:ns/releases/:release',
    need: { kind: 'action', action: 'write', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', release = '' } = ctx.params;
      const type = String(ctx.req.headers['content-type'] ?? 'application/json');
      if (!/^application\/json\b/i.test(type))
        throw new HttpError(
          'ERR_UNSUPPORTED_MEDIA_TYPE',
          'the body is the release manifest (application/json)',
        );
      const text = (await readBody(ctx.req, app.options.maxJsonBytes)).toString('utf8');
      try {
        JSON.parse(text);
      } catch {
        throw new HttpError('ERR_INVALID_JSON', 'the request body is not valid JSON');
      }
      const manifest = parseReleaseManifestText(text, `release ${release}`);
      if (manifest.release !== release)
        throw new HttpError(
          'ERR_COMPONENT_MISMATCH',
          `the manifest is for release ${manifest.release}, not ${release}`,
        );
      const manifestSha256 = sha256Hex(text);
      const existing = await app.repo.getRelease(ns, release);
      if (existing) {
        if (existing.manifestSha256 === manifestSha256) {
          sendJson(ctx.res, 200, releaseJson(existing, { status: 'unchanged' }));
          return;
        }
        throw new HttpError(
          'ERR_RELEASE_EXISTS',
          `release ${release} is already published in "${ns}"; releases are immutable`,
        );
      }
      for (const c of manifest.components) {
        const row = await app.repo.getComponent(ns, c.type, c.version);
        if (!row)
          throw new HttpError(
            'ERR_COMPONENT_MISMATCH',
            `component ${c.type}:${c.version} is not published in "${ns}"`,
          );
        if (row.manifestSha256 !== c.manifestSha256 || row.archiveSha256 !== c.archiveSha256)
          throw new HttpError(
            'ERR_COMPONENT_MISMATCH',
            `component ${c.type}:${c.version} in "${ns}" has other content than the release names`,
          );
      }
      await app.store.put(blobKey(manifestSha256), text, { ifNoneMatch: true });
      const row: ReleaseRow = {
        namespace: ns,
        release,
        manifestSha256,
        notes: manifest.notes,
        components: manifest.components.map((c) => `${c.type}:${c.version}`),
        createdAt: app.now().toISOString(),
        publishedBy: ctx.principal.label,
      };
      if ((await app.repo.insertRelease(row)) === 'exists') {
        const cur = await app.repo.getRelease(ns, release);
        if (cur?.manifestSha256 === manifestSha256) {
          sendJson(ctx.res, 200, releaseJson(cur, { status: 'unchanged' }));
          return;
        }
        throw new HttpError(
          'ERR_RELEASE_EXISTS',
          `release ${release} was published in "${ns}" by someone else meanwhile`,
        );
      }
      await app.audit(ctx, 'release.publish', ns, release, { manifestSha256, components: row.components });
      sendJson(ctx.res, 201, releaseJson(row, { status: 'created' }));
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/namespaces/:ns/releases/:release',
    need: { kind: 'action', action: 'admin', ns: ':ns' },
    async handle(ctx, app) {
      const r = await getReleaseOr404(app, ctx);
      const pointers = (await app.repo.listPointers(r.namespace)).filter((p) => p.target === r.release);
      if (pointers.length > 0)
        throw new HttpError(
          'ERR_IN_USE',
          `pointer(s) ${pointers.map((p) => p.name).join(', ')} name release ${r.release}; move them first`,
        );
      await app.repo.deleteRelease(r.namespace, r.release);
      await app.audit(ctx, 'release.delete', r.namespace, r.release, { manifestSha256: r.manifestSha256 });
      sendJson(ctx.res, 200, { status: 'deleted' });
    },
  },

  // ---- pointers ----
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/pointers',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const items = await app.repo.listPointers(ctx.params.ns ?? '');
      sendJson(ctx.res, 200, { pointers: items });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/namespaces/:ns/pointers/:name',
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', name = '' } = ctx.params;
      const p = await app.repo.getPointer(ns, name);
      if (!p) throw new HttpError('ERR_NOT_FOUND', `no pointer "${name}" in namespace "${ns}"`);
      sendJson(ctx.res, 200, p, { etag: pointerEtag(p.revision) });
    },
  },
  {
    method: 'PUT',
    path: '/api/v1/namespaces/:ns/pointers/:name',
    need: { kind: 'action', action: 'admin', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', name = '' } = ctx.params;
      const body = parse(pointerBodySchema, await readJson(ctx.req, 64 * 1024));
      const ifMatch = parseRevision(ctx.req.headers['if-match']);
      const create = ctx.req.headers['if-none-match']?.trim() === '*';
      if (ifMatch === undefined && !create)
        throw new HttpError(
          'ERR_PRECONDITION_REQUIRED',
          'pointer updates are compare-and-swap: send If-Match: "REVISION" (from GET) or If-None-Match: * to create',
        );
      const target = await app.repo.getRelease(ns, body.target);
      if (!target)
        throw new HttpError('ERR_BAD_REQUEST', `release ${body.target} is not in namespace "${ns}"`);
      const r = await app.repo.setPointer(
        ns,
        name,
        body.target,
        create ? null : (ifMatch ?? 0),
        ctx.principal.label,
        app.now().toISOString(),
      );
      if (r.status === 'conflict') {
        throw new HttpError(
          'ERR_PRECONDITION_FAILED',
          r.current
            ? `pointer "${name}" is at revision ${r.current.revision} (${r.current.target}); read it again and retry`
            : `pointer "${name}" does not exist; create it with If-None-Match: *`,
          r.current ? { etag: pointerEtag(r.current.revision) } : {},
        );
      }
      await app.audit(ctx, 'pointer.move', ns, name, { target: body.target, revision: r.pointer.revision });
      sendJson(ctx.res, r.pointer.revision === 1 ? 201 : 200, r.pointer, {
        etag: pointerEtag(r.pointer.revision),
      });
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/namespaces/:ns/pointers/:name',
    need: { kind: 'action', action: 'admin', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', name = '' } = ctx.params;
      const rev = parseRevision(ctx.req.headers['if-match']);
      if (rev === undefined)
        throw new HttpError('ERR_PRECONDITION_REQUIRED', 'send If-Match: "REVISION" to delete a pointer');
      if (!(await app.repo.deletePointer(ns, name, rev)))
        throw new HttpError(
          'ERR_PRECONDITION_FAILED',
          `pointer "${name}" is not at revision ${rev} (or does not exist)`,
        );
      await app.audit(ctx, 'pointer.delete', ns, name, { revision: rev });
      sendJson(ctx.res, 200, { status: 'deleted' });
    },
  },

  // ---- search, stats, audit ----
  {
    method: 'GET',
    path: '/api/v1/search',
    need: { kind: 'action', action: 'read', ns: 'any' },
    async handle(ctx, app) {
      const q = (ctx.query.get('q') ?? '').slice(0, 256);
      const opt = (k: string): string | undefined => ctx.query.get(k) || undefined;
      const r = await app.repo.search({
        terms: q.split(/\s+/).filter(Boolean).slice(0, 8),
        namespaces: allowedNamespaces(ctx.principal, 'read'),
        namespace: opt('namespace'),
        type: opt('type'),
        tag: opt('tag'),
        framework: opt('framework'),
        limit: limitOf(ctx, 50, 500),
      });
      sendJson(ctx.res, 200, {
        query: q,
        components: r.components.map((c) => componentJson(c, { downloads: c.downloads })),
        releases: r.releases.map((x) => releaseJson(x)),
      });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/stats',
    need: { kind: 'action', action: 'read', ns: 'any' },
    async handle(ctx, app) {
      const until = isoParam(ctx, 'until') ?? app.now().toISOString();
      const since = isoParam(ctx, 'since') ?? new Date(Date.parse(until) - 30 * 86400_000).toISOString();
      const rows = await app.repo.stats({
        since: since.slice(0, 10),
        until: until.slice(0, 10),
        namespaces: allowedNamespaces(ctx.principal, 'read'),
      });
      sendJson(ctx.res, 200, {
        since: since.slice(0, 10),
        until: until.slice(0, 10),
        components: rows,
        totals: {
          downloads: rows.reduce((s, r) => s + r.downloads, 0),
          bytes: rows.reduce((s, r) => s + r.bytes, 0),
        },
      });
    },
  },
  {
    method: 'GET',
    path: '/api/v1/audit',
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      const events = await app.repo.listAudit({
        since: isoParam(ctx, 'since'),
        until: isoParam(ctx, 'until'),
        limit: limitOf(ctx, 100, 10_000),
        namespaces: allowedNamespaces(ctx.principal, 'admin'),
      });
      sendJson(ctx.res, 200, { events });
    },
  },

  // ---- tokens ----
  {
    method: 'GET',
    path: '/api/v1/tokens',
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      const mine = ctx.principal.kind === 'token' ? ctx.principal.token.namespaces : [];
      const tokens = (await app.repo.listTokens()).filter((t) => scopeWithin(t.namespaces, mine));
      sendJson(ctx.res, 200, { tokens: tokens.map(publicToken) });
    },
  },
  {
    method: 'POST',
    path: '/api/v1/tokens',
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      const body = parse(tokenBodySchema, await readJson(ctx.req, 64 * 1024));
      const created = await createToken(ctx, app, body);
      sendJson(ctx.res, 201, created);
    },
  },
  {
    method: 'DELETE',
    path: '/api/v1/tokens/:id',
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      await revokeToken(ctx, app, ctx.params.id ?? '');
      sendJson(ctx.res, 200, { status: 'revoked' });
    },
  },
];

export async function createToken(
  ctx: RouteContext,
  app: RegistryApp,
  body: { name: string; role: Role; namespaces: string[]; expiresInDays?: number | undefined },
): Promise<ReturnType<typeof publicToken> & { token: string }> {
  const mine = ctx.principal.kind === 'token' ? ctx.principal.token : undefined;
  if (!mine || !scopeWithin(body.namespaces, mine.namespaces) || rankOf(body.role) > rankOf(mine.role))
    throw new HttpError('ERR_FORBIDDEN', 'a token can only create tokens within its own role and namespaces');
  const namespaces = body.namespaces.includes('*') ? ['*'] : [...new Set(body.namespaces)].sort();
  const token = generateToken();
  const { id, hash } = hashToken(token);
  const at = app.now();
  const row = {
    id,
    name: body.name,
    hash,
    role: body.role,
    namespaces,
    createdAt: at.toISOString(),
    createdBy: ctx.principal.label,
    expiresAt: body.expiresInDays
      ? new Date(at.getTime() + body.expiresInDays * 86400_000).toISOString()
      : null,
    revokedAt: null,
    lastUsedAt: null,
  };
  await app.repo.insertToken(row);
  await app.audit(ctx, 'token.create', null, id, {
    name: row.name,
    role: row.role,
    namespaces,
    expiresAt: row.expiresAt,
  });
  return { ...publicToken(row), token };
}

export async function revokeToken(ctx: RouteContext, app: RegistryApp, id: string): Promise<void> {
  const t = await app.repo.getToken(id);
  const mine = ctx.principal.kind === 'token' ? ctx.principal.token.namespaces : [];
  if (!t || !scopeWithin(t.namespaces, mine)) throw new HttpError('ERR_NOT_FOUND', `no token ${id}`);
  if (!(await app.repo.revokeToken(id, app.now().toISOString())))
    throw new HttpError('ERR_NOT_FOUND', `token ${id} is already revoked`);
  await app.audit(ctx, 'token.revoke', null, id, { name: t.name });
}
