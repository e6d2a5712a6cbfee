/**
 * The HTTP field grammar the upstream client writes and reads by, in one place, so the request writer, the
 * response parser and the proxy's header scan cannot drift apart.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.6
 */

/** token (RFC 9110 §5.6.2): methods and field names. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * field-value (RFC 9110 §5.5): HTAB, SP, VCHAR, obs-text, nothing else. This is also what node:http's writeHead
 * accepts, so a response header that passes can always be relayed; and a UTF-16 unit above 0xFF fails it, which
 * matters to a writer: written as latin1 it would lose its high byte, and U+010A would go out as LF.
 */
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A value without its leading and trailing OWS: SP and HTAB only (RFC 9110 §5.6.3), never other Unicode spaces. */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/**
 * The lowercase non-empty members of a comma-separated header value (Connection), stripped of OWS: SP and
 * HTAB only. `String.trim()` would also strip NBSP (0xA0) and other Unicode spaces, making `\xA0close` read
 * as `close` where node:http (llhttp) and the backend read another token. Empty members are skipped, as a
 * recipient must (RFC 9110 §5.6.1).
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.6.3
 */
export function listTokens(value: string): string[] {
  const out: string[] = [];
  for (const part of value.toLowerCase().split(',')) {
    const t = trimOws(part);
    if (t) out.push(t);
  }
  return out;
}
