/**
 * The web UI: server-rendered HTML that works without JavaScript. The session is the token
 * itself in an HttpOnly, SameSite=Strict cookie (so any instance can serve any request); forms
 * that change state are POSTs that also check Origin/Referer against the Host.
 */
import { parseComponentManifestText, type ComponentManifest } from '../../manifest/component.js';
import type { Route, RouteContext, RegistryApp } from './app.js';
import { allowedNamespaces, checkToken, publicToken, scopeWithin } from './auth.js';
import { blobKey, serveBlob } from './content.js';
import { escapeHtml as h, HttpError, readBody } from './http.js';
import type { ComponentRow, Role } from './repo/types.js';
import { componentSubject, createToken, releaseSubject, revokeToken } from './routes-api.js';
import { statusOf, type SignatureStatus } from './signatures.js';

const CSS = `
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--accent:#0969da;--ok:#1a7f37;--warn:#9a6700}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg)}
header{border-bottom:1px solid var(--line);background:var(--bg)}
header .bar{max-width:72rem;margin:0 auto;padding:.75rem 1rem;display:flex;gap:1.5rem;align-items:center}
header a.brand{font-weight:700;color:var(--fg);text-decoration:none}header nav{display:flex;gap:1rem;flex:1}
main{max-width:72rem;margin:0 auto;padding:1.5rem 1rem 4rem}a{color:var(--accent)}
h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.15rem;margin:2rem 0 .6rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}
table{border-collapse:collapse;width:100%;font-size:.92rem}th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600}td.num{text-align:right;white-space:nowrap}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem}
.sha{word-break:break-all;color:var(--muted)}pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:.75rem;overflow:auto;max-height:32rem}
.cmd{background:#0d1117;color:#e6edf3;border:0;white-space:pre-wrap;word-break:break-all}
form.search{display:flex;gap:.5rem;margin:0 0 1.5rem}input,select,button{font:inherit;padding:.45rem .6rem;border:1px solid var(--line);border-radius:6px}
input[type=search],input[type=text],input[type=password]{flex:1;min-width:12rem}button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.secondary{background:#fff;color:var(--fg);border-color:var(--line)}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1.2rem;margin:0}dt{color:var(--muted)}dd{margin:0}
.tag{display:inline-block;background:#ddf4ff;color:#0550ae;border-radius:999px;padding:0 .55rem;margin:0 .25rem .25rem 0;font-size:.8rem}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;font-size:.8rem;border:1px solid var(--line)}
.badge.ok{color:var(--ok);border-color:var(--ok)}.badge.warn{color:var(--warn);border-color:var(--warn)}
.badge.bad{color:#d1242f;border-color:#d1242f}
.notice{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.error{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.muted{color:var(--muted)}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:1rem}
.card{border:1px solid var(--line);border-radius:8px;padding:1rem}
form.inline{display:inline}.login{max-width:26rem;margin:3rem auto}.login form{display:flex;flex-direction:column;gap:.75rem}
`;

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

const seg = encodeURIComponent;

function signatureHtml(s: SignatureStatus): string {
  if (s.status === 'unsigned') return '<span class="badge warn">not signed</span>';
  if (s.status === 'invalid')
    return `<span class="badge bad">invalid signature</span>${s.keyId ? ` <span class="muted">key <span class="mono">${h(s.keyId)}</span></span>` : ''} <span class="muted">${h(s.reason)}</span>`;
  return `<span class="badge ok">signed</span> by key <span class="mono">${h(s.keyId)}</span> <span class="muted">${
    s.verified
      ? '(verified by this registry)'
      : '(not checked: this registry does not trust the key; deploy with --require-signature --trusted-key)'
  }</span>`;
}

function encryptionHtml(m: ComponentManifest | undefined): string {
  const e = m?.encryption;
  if (!e) return '<span class="muted">none</span>';
  return `age, ${
    e.passphrase
      ? 'with a passphrase'
      : `to ${e.recipients.map((r) => `<span class="sha mono">${h(r)}</span>`).join(', ')}`
  } <span class="muted">(the registry holds only the ciphertext)</span>`;
}

function page(ctx: RouteContext, title: string, body: string): string {
  const p = ctx.principal;
  const who =
    p.kind === 'token'
      ? `<span class="muted">${h(p.token.name)} · ${h(p.token.role)}</span>
         <form class="inline" method="post" action="/logout"><button class="secondary" type="submit">Log out</button></form>`
      : `<a href="/login">Log in</a>`;
  const admin = p.kind === 'token' && p.token.role === 'admin' ? '<a href="/admin/tokens">Tokens</a>' : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${h(title)} · deploy-tool registry</title><style>${CSS}</style></head><body>
<header><div class="bar"><a class="brand" href="/">deploy-tool registry</a><nav><a href="/">Browse</a>${admin}</nav>${who}</div></header>
<main>${body}</main></body></html>`;
}

function sendHtml(
  ctx: RouteContext,
  status: number,
  html: string,
  headers: Record<string, string> = {},
): void {
  ctx.res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': String(Buffer.byteLength(html)),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'",
    'referrer-policy': 'same-origin',
    ...headers,
  });
  ctx.res.end(ctx.method === 'HEAD' ? undefined : html);
}

function redirect(ctx: RouteContext, location: string, headers: Record<string, string> = {}): void {
  ctx.res.writeHead(303, { location, 'cache-control': 'no-store', ...headers });
  ctx.res.end();
}

function baseUrl(ctx: RouteContext, app: RegistryApp): string {
  if (app.options.publicUrl) return app.options.publicUrl.replace(/\/$/, '');
  const host = ctx.req.headers.host ?? '127.0.0.1';
  return `http://${host}`;
}

/** Same-origin check for state-changing form posts (besides the SameSite=Strict cookie). */
function checkOrigin(ctx: RouteContext): void {
  const origin = ctx.req.headers.origin ?? ctx.req.headers.referer;
  if (!origin || origin === 'null') return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new HttpError('ERR_FORBIDDEN', 'the form was not sent from this site');
  }
  if (host !== ctx.req.headers.host)
    throw new HttpError('ERR_FORBIDDEN', 'the form was not sent from this site');
}

async function readForm(ctx: RouteContext): Promise<URLSearchParams> {
  const type = String(ctx.req.headers['content-type'] ?? '');
  if (!type.startsWith('application/x-www-form-urlencoded'))
    throw new HttpError('ERR_UNSUPPORTED_MEDIA_TYPE', 'expected a form (application/x-www-form-urlencoded)');
  return new URLSearchParams((await readBody(ctx.req, 64 * 1024)).toString('utf8'));
}

function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

function componentRows(items: (ComponentRow & { downloads?: number })[]): string {
  if (items.length === 0) return '<p class="muted">No components match.</p>';
  return `<table><thead><tr><th>Component</th><th>Namespace</th><th>Description</th><th>Framework</th><th>Size</th><th>Downloads</th><th>Published</th></tr></thead><tbody>
${items
  .map(
    (
      c,
    ) => `<tr><td><a href="/ns/${seg(c.namespace)}/components/${seg(c.type)}/${seg(c.version)}">${h(c.type)}:${h(c.version)}</a></td>
<td>${h(c.namespace)}</td><td>${h(c.metadata.description ?? '')} ${c.metadata.tags.map((t) => `<span class="tag">${h(t)}</span>`).join('')}</td>
<td>${h(c.metadata.framework ?? '')}</td><td class="num">${formatBytes(c.archiveSize)}</td><td class="num">${c.downloads ?? ''}</td><td>${h(c.createdAt.slice(0, 10))}</td></tr>`,
  )
  .join('\n')}</tbody></table>`;
}

export const uiRoutes: Route[] = [
  {
    method: 'GET',
    path: '/',
    ui: true,
    need: { kind: 'action', action: 'read', ns: 'any' },
    async handle(ctx, app) {
      const q = (ctx.query.get('q') ?? '').slice(0, 256);
      const r = await app.repo.search({
        terms: q.split(/\s+/).filter(Boolean).slice(0, 8),
        namespaces: allowedNamespaces(ctx.principal, 'read'),
        limit: 100,
      });
      const releases =
        r.releases.length === 0
          ? '<p class="muted">No releases match.</p>'
          : `<table><thead><tr><th>Release</th><th>Namespace</th><th>Components</th><th>Notes</th><th>Published</th></tr></thead><tbody>
${r.releases
  .map(
    (
      x,
    ) => `<tr><td><a href="/ns/${seg(x.namespace)}/releases/${seg(x.release)}">${h(x.release)}</a></td><td>${h(x.namespace)}</td>
<td class="mono">${x.components.map(h).join(', ')}</td><td>${h(x.notes ?? '')}</td><td>${h(x.createdAt.slice(0, 10))}</td></tr>`,
  )
  .join('\n')}</tbody></table>`;
      sendHtml(
        ctx,
        200,
        page(
          ctx,
          q ? `Search: ${q}` : 'Browse',
          `<h1>${q ? `Results for “${h(q)}”` : 'Components and releases'}</h1>
<form class="search" method="get" action="/"><input type="search" name="q" value="${h(q)}" placeholder="Search by name, version, description, tag, framework, author" aria-label="Search"><button type="submit">Search</button></form>
<h2>Components</h2>${componentRows(r.components)}
<h2>Releases</h2>${releases}`,
        ),
      );
    },
  },
  {
    method: 'GET',
    path: '/login',
    ui: true,
    need: { kind: 'public' },
    handle(ctx) {
      const next = safeNext(ctx.query.get('next'));
      const failed = ctx.query.get('failed') === '1';
      sendHtml(
        ctx,
        failed ? 401 : 200,
        page(
          ctx,
          'Log in',
          `<div class="login"><h1>Log in</h1>
${failed ? '<div class="error" role="alert">That token is not valid, has expired or was revoked.</div>' : ''}
<p class="muted">Paste an API token (create one with <code>deploy-tool token create</code>).</p>
<form method="post" action="/login"><input type="hidden" name="next" value="${h(next)}">
<label for="token">Token</label><input id="token" type="password" name="token" autocomplete="current-password" required>
<button type="submit">Log in</button></form></div>`,
        ),
      );
      return Promise.resolve();
    },
  },
  {
    method: 'POST',
    path: '/login',
    ui: true,
    need: { kind: 'public' },
    async handle(ctx, app) {
      checkOrigin(ctx);
      const form = await readForm(ctx);
      const token = (form.get('token') ?? '').trim();
      const next = safeNext(form.get('next'));
      const check = await checkToken(app.repo, token, app.now());
      if (!check.ok) {
        app.metrics.authFailure(check.reason);
        const blocked = app.limiter.blockedFor(ctx.address);
        if (blocked > 0) {
          throw new HttpError(
            'ERR_TOO_MANY_FAILURES',
            'too many failed logins from this address; try later',
            {
              'retry-after': String(blocked),
            },
          );
        }
        const delay = app.limiter.fail(ctx.address);
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        redirect(ctx, `/login?failed=1&next=${encodeURIComponent(next)}`);
        return;
      }
      app.limiter.succeed(ctx.address);
      const secure = app.options.publicUrl?.startsWith('https:') ? '; Secure' : '';
      redirect(ctx, next, {
        'set-cookie': `dt_token=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200${secure}`,
      });
    },
  },
  {
    method: 'POST',
    path: '/logout',
    ui: true,
    need: { kind: 'public' },
    handle(ctx) {
      checkOrigin(ctx);
      ctx.req.resume();
      redirect(ctx, '/login', { 'set-cookie': 'dt_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0' });
      return Promise.resolve();
    },
  },
  {
    method: 'GET',
    path: '/ns/:ns/components/:type/:version',
    ui: true,
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', type = '', version = '' } = ctx.params;
      const c = await app.repo.getComponent(ns, type, version);
      if (!c)
        throw new HttpError('ERR_NOT_FOUND', `component ${type}:${version} is not in namespace "${ns}"`);
      const [downloads, releases, text] = await Promise.all([
        app.repo.downloadsOf(ns, type, version),
        app.repo.releasesUsing(ns, type, version),
        app.store.get(blobKey(c.manifestSha256)),
      ]);
      let manifest: ComponentManifest | undefined;
      try {
        manifest = text ? parseComponentManifestText(text.toString('utf8'), 'manifest') : undefined;
      } catch {
        manifest = undefined;
      }
      const signature = await statusOf(app, componentSubject(c), text);
      const files = (manifest?.files ?? []).filter((f) => f.type === 'file');
      const shown = files.slice(0, 1000);
      const base = baseUrl(ctx, app);
      const deployCmd = releases.length
        ? `deploy-tool deploy --method registry --registry ${base} --namespace ${ns} --release ${releases[releases.length - 1] ?? ''} --target /opt/ml-apps/${ns}`
        : `deploy-tool deploy --method registry --registry ${base} --namespace ${ns} --component ${type}:${version} --target /opt/ml-apps/${ns}`;
      const m = c.metadata;
      const pretty = text ? JSON.stringify(JSON.parse(text.toString('utf8')) as unknown, null, 2) : '';
      const body = `<p class="muted"><a href="/?q=${seg(ns)}">${h(ns)}</a> / ${h(type)}</p>
<h1>${h(type)}:${h(version)}</h1>
${m.description ? `<p>${h(m.description)}</p>` : ''}
<p>${m.tags.map((t) => `<a class="tag" href="/?q=${seg(t)}">${h(t)}</a>`).join('')}</p>
<div class="grid">
<div class="card"><dl>
<dt>Namespace</dt><dd>${h(ns)}</dd><dt>Author</dt><dd>${h(m.author ?? '—')}</dd><dt>License</dt><dd>${h(m.license ?? '—')}</dd>
<dt>Framework</dt><dd>${h(m.framework ?? '—')}</dd><dt>Published</dt><dd>${h(c.createdAt)} by ${h(c.publishedBy)}</dd>
</dl></div>
<div class="card"><dl>
<dt>Files</dt><dd>${c.files} (${formatBytes(c.totalSize)})</dd>
<dt>Archive</dt><dd><a href="/ns/${seg(ns)}/components/${seg(type)}/${seg(version)}/download">${h(c.archiveName)}</a> (${formatBytes(c.archiveSize)})</dd>
<dt>Compression</dt><dd>${h(c.compression)}${manifest ? ` level ${manifest.archive.level}, ${manifest.frames.length} frame(s)` : ''}</dd>
<dt>Encryption</dt><dd>${encryptionHtml(manifest)}</dd>
<dt>Signature</dt><dd>${signatureHtml(signature)}</dd>
<dt>Downloads</dt><dd><strong>${downloads}</strong></dd>
<dt>Releases</dt><dd>${releases.length ? releases.map((r) => `<a href="/ns/${seg(ns)}/releases/${seg(r)}">${h(r)}</a>`).join(', ') : '<span class="muted">none</span>'}</dd>
</dl></div></div>
<h2>Deploy</h2>
<pre class="cmd" aria-label="deploy command">${h(deployCmd)}</pre>
<h2>Archive sha256</h2><p class="sha mono">${h(c.archiveSha256)}</p>
<h2>Files</h2>
<table><thead><tr><th>Path</th><th>Size</th><th>sha256</th></tr></thead><tbody>
${shown.map((f) => `<tr><td class="mono">${h(f.path)}</td><td class="num">${formatBytes(f.type === 'file' ? f.size : 0)}</td><td class="sha mono">${h(f.type === 'file' ? f.sha256 : '')}</td></tr>`).join('\n')}
</tbody></table>${files.length > shown.length ? `<p class="muted">${files.length - shown.length} more files not shown.</p>` : ''}
<h2>Manifest</h2><p class="muted">sha256 <span class="mono">${h(c.manifestSha256)}</span></p>
<details><summary>Show the component manifest</summary><pre>${h(pretty.length > 200_000 ? `${pretty.slice(0, 200_000)}\n…` : pretty)}</pre></details>`;
      sendHtml(ctx, 200, page(ctx, `${type}:${version}`, body));
    },
  },
  {
    method: 'GET',
    path: '/ns/:ns/components/:type/:version/download',
    ui: true,
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', type = '', version = '' } = ctx.params;
      const c = await app.repo.getComponent(ns, type, version);
      if (!c)
        throw new HttpError('ERR_NOT_FOUND', `component ${type}:${version} is not in namespace "${ns}"`);
      await serveBlob(ctx, app, c.archiveSha256, {
        attribution: { namespace: ns, type, version },
        filename: c.archiveName,
      });
    },
  },
  {
    method: 'GET',
    path: '/ns/:ns/releases/:release',
    ui: true,
    need: { kind: 'action', action: 'read', ns: ':ns' },
    async handle(ctx, app) {
      const { ns = '', release = '' } = ctx.params;
      const r = await app.repo.getRelease(ns, release);
      if (!r) throw new HttpError('ERR_NOT_FOUND', `release ${release} is not in namespace "${ns}"`);
      const comps = await Promise.all(
        r.components.map(async (id) => {
          const i = id.indexOf(':');
          return app.repo.getComponent(ns, id.slice(0, i), id.slice(i + 1));
        }),
      );
      const pointers = (await app.repo.listPointers(ns)).filter((p) => p.target === release);
      const text = await app.store.get(blobKey(r.manifestSha256));
      const signature = await statusOf(app, releaseSubject(r), text);
      const pretty = text ? JSON.stringify(JSON.parse(text.toString('utf8')) as unknown, null, 2) : '';
      const base = baseUrl(ctx, app);
      const body = `<p class="muted"><a href="/?q=${seg(ns)}">${h(ns)}</a> / releases</p>
<h1>Release ${h(release)}</h1>
${r.notes ? `<p>${h(r.notes)}</p>` : ''}
<dl><dt>Namespace</dt><dd>${h(ns)}</dd><dt>Published</dt><dd>${h(r.createdAt)} by ${h(r.publishedBy)}</dd>
<dt>Pointers</dt><dd>${pointers.length ? pointers.map((p) => `<span class="badge ok">${h(p.name)}</span>`).join(' ') : '<span class="muted">none</span>'}</dd>
<dt>Signature</dt><dd>${signatureHtml(signature)}</dd>
<dt>Manifest sha256</dt><dd class="sha mono">${h(r.manifestSha256)}</dd></dl>
<h2>Deploy</h2><pre class="cmd">${h(`deploy-tool deploy --method registry --registry ${base} --namespace ${ns} --release ${release} --target /opt/ml-apps/${ns}`)}</pre>
<h2>Components</h2>
<table><thead><tr><th>Component</th><th>Archive</th><th>Size</th><th>Compression</th><th>sha256</th></tr></thead><tbody>
${comps
  .map((c, i) =>
    c
      ? `<tr><td><a href="/ns/${seg(ns)}/components/${seg(c.type)}/${seg(c.version)}">${h(c.type)}:${h(c.version)}</a></td><td class="mono">${h(c.archiveName)}</td>
<td class="num">${formatBytes(c.archiveSize)}</td><td>${h(c.compression)}</td><td class="sha mono">${h(c.archiveSha256)}</td></tr>`
      : `<tr><td colspan="5">${h(r.components[i] ?? '')} (missing)</td></tr>`,
  )
  .join('\n')}</tbody></table>
<h2>Manifest</h2><details><summary>Show the release manifest</summary><pre>${h(pretty)}</pre></details>`;
      sendHtml(ctx, 200, page(ctx, `Release ${release}`, body));
    },
  },
  {
    method: 'GET',
    path: '/admin/tokens',
    ui: true,
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      await renderTokens(ctx, app);
    },
  },
  {
    method: 'POST',
    path: '/admin/tokens',
    ui: true,
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      checkOrigin(ctx);
      const form = await readForm(ctx);
      const role = form.get('role') ?? 'reader';
      if (!['reader', 'publisher', 'admin'].includes(role))
        throw new HttpError('ERR_INVALID_BODY', 'unknown role');
      const name = (form.get('name') ?? '').trim();
      // eslint-disable-next-line no-control-regex
      if (!name || name.length > 128 || /[\x00-\x1f\x7f]/.test(name))
        throw new HttpError('ERR_INVALID_BODY', 'a token needs a name (up to 128 characters)');
      const namespaces = (form.get('namespaces') ?? '*').split(/[\s,]+/).filter(Boolean);
      if (
        namespaces.length === 0 ||
        namespaces.some((n) => !/^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})$/.test(n))
      )
        throw new HttpError('ERR_INVALID_BODY', 'namespaces are names separated by commas, or *');
      const days = Number(form.get('expiresInDays') || 0);
      if (!Number.isFinite(days) || days < 0 || days > 3650)
        throw new HttpError('ERR_INVALID_BODY', 'expiry is a number of days from 0 (never) to 3650');
      const created = await createToken(ctx, app, {
        name,
        role: role as Role,
        namespaces,
        expiresInDays: days > 0 ? days : undefined,
      });
      await renderTokens(ctx, app, created.token, created.name);
    },
  },
  {
    method: 'POST',
    path: '/admin/tokens/:id/revoke',
    ui: true,
    need: { kind: 'action', action: 'admin', ns: 'any' },
    async handle(ctx, app) {
      checkOrigin(ctx);
      ctx.req.resume();
      await revokeToken(ctx, app, ctx.params.id ?? '');
      redirect(ctx, '/admin/tokens');
    },
  },
];

async function renderTokens(
  ctx: RouteContext,
  app: RegistryApp,
  newToken?: string,
  newName?: string,
): Promise<void> {
  const mine = ctx.principal.kind === 'token' ? ctx.principal.token.namespaces : [];
  const tokens = (await app.repo.listTokens())
    .filter((t) => scopeWithin(t.namespaces, mine))
    .map(publicToken);
  const created = newToken
    ? `<div class="notice" role="status"><strong>Token “${h(newName ?? '')}” created.</strong> Copy it now: it is shown only once.
<pre class="mono" id="new-token">${h(newToken)}</pre></div>`
    : '';
  const body = `<h1>API tokens</h1>${created}
<h2>Create a token</h2>
<form method="post" action="/admin/tokens" class="search">
<input type="text" name="name" placeholder="Name (who or what uses it)" required aria-label="Name">
<select name="role" aria-label="Role"><option value="reader">reader</option><option value="publisher">publisher</option><option value="admin">admin</option></select>
<input type="text" name="namespaces" value="*" aria-label="Namespaces" title="Namespaces, separated by commas, or *">
<input type="text" name="expiresInDays" placeholder="Expires in days (empty: never)" aria-label="Expires in days">
<button type="submit">Create</button></form>
<h2>Tokens</h2>
<table><thead><tr><th>Name</th><th>Id</th><th>Role</th><th>Namespaces</th><th>Created</th><th>Expires</th><th>Last used</th><th>Status</th><th></th></tr></thead><tbody>
${tokens
  .map(
    (
      t,
    ) => `<tr><td>${h(t.name)}</td><td class="mono">${h(t.id)}</td><td>${h(t.role)}</td><td>${h(t.namespaces.join(', '))}</td>
<td>${h(t.createdAt.slice(0, 16).replace('T', ' '))}</td><td>${h(t.expiresAt?.slice(0, 10) ?? 'never')}</td><td>${h(t.lastUsedAt?.slice(0, 16).replace('T', ' ') ?? '—')}</td>
<td><span class="badge ${t.status === 'active' ? 'ok' : 'warn'}">${h(t.status)}</span></td>
<td>${t.status === 'active' ? `<form class="inline" method="post" action="/admin/tokens/${h(t.id)}/revoke"><button class="secondary" type="submit">Revoke</button></form>` : ''}</td></tr>`,
  )
  .join('\n')}</tbody></table>`;
  sendHtml(ctx, newToken ? 201 : 200, page(ctx, 'Tokens', body));
}
