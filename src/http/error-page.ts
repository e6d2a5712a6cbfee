import type { IncomingHttpHeaders } from 'node:http';
import type { ErrorBody } from '../errors.ts';

/**
 * Whether a failed request was a browser navigation (a page the user is looking at) rather than a fetch/XHR an
 * SPA reads as JSON. Sec-Fetch-Mode decides when the browser sends it; without it (older browsers, curl) an
 * Accept naming text/html does.
 * @see https://www.w3.org/TR/fetch-metadata/#sec-fetch-mode-header
 */
export function isNavigation(headers: IncomingHttpHeaders): boolean {
  const mode = headers['sec-fetch-mode'];
  if (typeof mode === 'string') return mode === 'navigate';
  return (headers.accept ?? '').includes('text/html');
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] ?? c);

/** What the page says beyond the code's message, for the failures a user can do something about. */
function hint(body: ErrorBody, baseUrl: string): string {
  switch (body.error) {
    case 'invalid_state':
      return (
        'This login link was already used or has expired, or the login was started in another browser or at another ' +
        `address than ${baseUrl}. Logging in again starts a fresh one.`
      );
    case 'login_failed':
      return body['idpError'] === 'access_denied'
        ? 'The login was cancelled or refused at the identity provider.'
        : 'The identity provider did not complete the login.';
    case 'idp_unavailable':
    case 'idp_error':
    case 'session_store_unavailable':
      return 'This is usually temporary: try again in a moment.';
    default:
      return '';
  }
}

/**
 * The small HTML page a browser navigation to /auth/* gets instead of raw JSON: what happened, "Log in again"
 * (at the base URL, so a login started at another address lands where it can finish) and the request id. Only
 * fixed texts, the stable code and Gatehouse's request id are shown: never the IdP's error_description, which is
 * attacker-controlled text (security-cases row 9). No script, so it renders under Gatehouse's CSP.
 */
export function renderErrorPage(baseUrl: string): (body: ErrorBody) => string {
  const loginUrl = escapeHtml(`${baseUrl}/auth/login`);
  const appUrl = escapeHtml(`${baseUrl}/`);
  return (body) => {
    const extra = hint(body, baseUrl);
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<link rel="icon" href="data:,">
<title>Login problem</title>
<style>
body { font-family: system-ui, sans-serif; color: #1d2430; background: #f6f7f9; max-width: 560px; margin: 4rem auto; padding: 0 1rem; }
main { background: #fff; border-radius: 10px; padding: 1.25rem 1.5rem; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
a.button { background: #2f5bea; color: #fff; border-radius: 6px; padding: 0.55rem 0.9rem; text-decoration: none; display: inline-block; }
.meta { color: #5b6472; font-size: 0.85rem; }
</style>
</head>
<body>
<main>
<h1>Something went wrong</h1>
<p id="message">${escapeHtml(body.message)}</p>
${extra ? `<p id="hint">${escapeHtml(extra)}</p>\n` : ''}<p><a class="button" id="login-again" href="${loginUrl}">Log in again</a> &nbsp; <a id="back" href="${appUrl}">Back to the app</a></p>
<p class="meta">Error <code id="code">${escapeHtml(body.error)}</code>${body.requestId ? ` · request id <code>${escapeHtml(body.requestId)}</code>` : ''}</p>
</main>
</body>
</html>
`;
  };
}
