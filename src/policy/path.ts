/**
 * The longest request-target admitted (8 KiB, nginx's and Apache's request-line limit): longer ones are 414
 * `uri_too_long`. Node's own 16 KiB head limit catches longer ones before any handler (app.ts answers them).
 */
export const MAX_URL_LENGTH = 8192;

/**
 * Splits `/api/...` into the backend path and the raw query, or returns undefined when the path could
 * reach a backend or prefix it was not mapped to: dot segments (raw or percent-encoded, also double-encoded),
 * encoded slashes or backslashes, encoded unreserved characters, raw backslashes, empty segments, `;` path
 * parameters, fragments and control characters. Everything accepted is forwarded byte for byte.
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-5.2.4
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-6.2.2.2
 */
export function splitApiTarget(url: string): { path: string; query: string } | undefined {
  // url starts with "/api" followed by "/", "?" or nothing (checked by the caller).
  const q = url.indexOf('?');
  const path = q === -1 ? url.slice(4) : url.slice(4, q);
  const query = q === -1 ? '' : url.slice(q);
  if (query.includes('#')) return undefined;
  if (path === '') return { path: '/', query };
  if (/[^A-Za-z0-9\-._~!$&'()*+,=:@/%]/.test(path)) return undefined; // \, #, ;, spaces, controls, non-ASCII
  if (path.includes('%')) {
    if (/%(?![0-9A-Fa-f]{2})/.test(path)) return undefined;
    // %2f %5c: encoded separators; %25: double encoding; %00: NUL. None has a legitimate use a backend could route on.
    if (/%(2f|5c|25|00)/i.test(path)) return undefined;
    // Encoded unreserved characters (%2e, %61, ...): RFC 3986 §6.2.2.2 makes "/%61dmin" equal to "/admin" for a
    // backend that normalises, while prefix matching here sees the raw bytes, so a host-only mapping would win.
    if (/%(?:[46][1-9a-f]|[57][0-9a]|3[0-9]|2[de]|5f|7e)/i.test(path)) return undefined;
  }
  // Segment by segment without an array: empty segments (except a trailing slash) and dot segments refuse.
  for (let start = 1; start <= path.length;) {
    let end = path.indexOf('/', start);
    if (end === -1) end = path.length;
    const len = end - start;
    if (len === 0 && end !== path.length) return undefined;
    if ((len === 1 && path[start] === '.') || (len === 2 && path[start] === '.' && path[start + 1] === '.')) return undefined;
    start = end + 1;
  }
  return { path, query };
}
