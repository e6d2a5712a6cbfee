const CONTROL_OR_BACKSLASH = /[\u0000-\u001f\u007f\\]/;
// oauth2-proxy's rule: a slash or backslash, then only whitespace or dots, then another one, means "another host".
const PROTOCOL_RELATIVE = /^[/\\](?:[\s\v]*|\.{1,2})[/\\]/;

/**
 * The post-login target: a local path or `/`. Anything that a browser could read as another origin
 * (//host, /\host, encoded variants, schemes, control characters) falls back to `/`.
 * @see https://www.rfc-editor.org/rfc/rfc9700#section-4.11.1
 */
export function safeLocalPath(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) return '/';
  if (!raw.startsWith('/') || CONTROL_OR_BACKSLASH.test(raw) || PROTOCOL_RELATIVE.test(raw)) return '/';
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return '/';
  }
  if (CONTROL_OR_BACKSLASH.test(decoded) || PROTOCOL_RELATIVE.test(decoded) || /\s/.test(decoded.slice(0, 3))) return '/';
  const probe = new URL(raw, 'http://gatehouse.invalid');
  if (probe.origin !== 'http://gatehouse.invalid') return '/';
  const local = probe.pathname + probe.search + probe.hash;
  // Dot segments are resolved only by the URL parser: /a/..//evil.example comes out as //evil.example.
  return PROTOCOL_RELATIVE.test(local) ? '/' : local;
}
