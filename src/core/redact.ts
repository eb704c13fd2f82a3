/**
 * Removes credentials from any text we print or write. Known secret values (from the
 * environment) are replaced wherever they appear; URL userinfo and common key=value forms too.
 */
const SECRET_ENV_NAMES = [
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'BOS_SECRET_ACCESS_KEY',
  'DEPLOY_TOOL_TOKEN',
  'DEPLOY_TOOL_BOOTSTRAP_TOKEN',
];

const extraSecrets = new Set<string>();

/** Registers a secret value (for example a passphrase read from a variable) for redaction. */
export function registerSecret(value: string | undefined): void {
  if (value && value.length >= 4) extraSecrets.add(value);
}

function knownSecrets(): string[] {
  const out = [...extraSecrets];
  for (const name of SECRET_ENV_NAMES) {
    const v = process.env[name];
    if (v && v.length >= 4) out.push(v);
  }
  return out;
}

const KEYS = 'secret_?access_?key|session_?token|password|passphrase|token|authorization';

export function redact(text: string): string {
  let out = text;
  for (const secret of knownSecrets()) out = out.split(secret).join('***');
  out = out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^/\s:@]+):([^/\s@]+)@/gi, '$1$2:***@');
  // An HTTP authorization value: keep the scheme, hide the credentials.
  out = out.replace(
    /\b(authorization["']?\s*[:=]\s*["']?)(bearer|basic|token|aws4-hmac-sha256)\s+([^"'\n]+)/gi,
    '$1$2 ***',
  );
  // A quoted value is hidden whole, spaces included (up to its closing quote).
  out = out.replace(
    new RegExp(`\\b(${KEYS})(["']?\\s*[:=]\\s*)(["'])((?:\\\\.|(?!\\3)[^\\\\\\n])+)\\3`, 'gi'),
    (m: string, key: string, sep: string, q: string, value: string) =>
      value === '***' || /^(bearer|basic|token|aws4-hmac-sha256) \*\*\*$/i.test(value)
        ? m
        : `${key}${sep}${q}***${q}`,
  );
  // Unquoted: up to the end of the token. A bare JSON literal (`"passphrase": false` in a
  // manifest's encryption) is no secret: keeping it keeps --json output parseable.
  out = out.replace(
    new RegExp(
      `\\b(${KEYS})(["']?\\s*[:=]\\s*)(?!["'])(?!(?:true|false|null)(?![^\\s"',}\\]]))(?!\\*\\*\\*)(?!(?:bearer|basic|token|aws4-hmac-sha256) \\*\\*\\*)([^\\s"',}]+)`,
      'gi',
    ),
    '$1$2***',
  );
  return out;
}
