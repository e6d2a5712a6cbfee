const CONTROL_OR_BACKSLASH = /[\u0000-\u001f\u007f\\]/;
// oauth2-proxy's rule: a slash or backslash, then only whitespace or dots, then another one, means "another host".
const PROTOCOL_RELATIVE = /^[/\\](?:[\s\v]*|\.{1,2})[/\\]/;
const PROBE_ORIGIN = 'http://gatehouse.invalid';
// How many times a target is percent-decoded while looking for a hidden `//host`; a value still changing after
// that is refused rather than followed further.
const MAX_DECODINGS = 4;

/**
 * The post-login target: a local path or `/`. Anything that a browser could read as another origin
 * (//host, /\host, encoded variants, schemes, control characters) falls back to `/`.
 *
 * The returned path is safe as it is and after any number of percent-decodings (up to MAX_DECODINGS): a
 * front end or backend that decodes it once more must not find `//evil.example` in it, as in
 * `/a/%2e%2e/%2fevil.example`, which the URL parser turns into `/%2fevil.example`. The result is stable:
 * safeLocalPath(safeLocalPath(x)) === safeLocalPath(x).
 * @see https://www.rfc-editor.org/rfc/rfc9700#section-4.11.1
 * @see https://cwe.mitre.org/data/definitions/601.html (CWE-601, encoded variants)
 */
export function safeLocalPath(raw: unknown): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) return '/';
  if (!staysLocal(raw) || !decodingsStayLocal(raw)) return '/';
  const probe = new URL(raw, PROBE_ORIGIN);
  const local = probe.pathname + probe.search + probe.hash;
  // Dot segments are resolved only by the URL parser (/a/..//evil.example becomes //evil.example, and
  // /a/%2e%2e/%2fevil.example becomes /%2fevil.example), so what it returns is checked again, decodings included.
  return staysLocal(local) && decodingsStayLocal(local) ? local : '/';
}

/** A path that starts with exactly one slash and that the URL parser keeps on our origin with such a path. */
function staysLocal(path: string): boolean {
  if (!path.startsWith('/') || CONTROL_OR_BACKSLASH.test(path) || PROTOCOL_RELATIVE.test(path) || /\s/.test(path.slice(0, 3))) return false;
  const probe = new URL(path, PROBE_ORIGIN);
  return probe.origin === PROBE_ORIGIN && !PROTOCOL_RELATIVE.test(probe.pathname);
}

/**
 * Each percent-decoding of `path` stays local. A first decoding that fails refuses the target (a malformed
 * escape is not a path we wrote); a later one that fails ends the walk, as `%25` was a literal `%`.
 */
function decodingsStayLocal(path: string): boolean {
  let current = path;
  for (let round = 0; round < MAX_DECODINGS; round++) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(current);
    } catch {
      return round > 0;
    }
    if (decoded === current) return true;
    if (!staysLocal(decoded)) return false;
    current = decoded;
  }
  return false;
}
