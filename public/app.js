// The demo SPA: it never sees a token. Every call carries only the session cookie.
// No inline script anywhere: this file is all the page runs, so it works under Gatehouse's CSP (script-src 'self').
const $ = (id) => document.getElementById(id);
const show = (value) => {
  $('output').textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
};
// Where a login started from this page comes back to: this very path (a deep link survives a re-login).
const here = location.pathname + location.search;
const loginHref = (extra = '') => `/auth/login?next=${encodeURIComponent(here)}${extra}`;
// Set when a silent check (prompt=none) leaves the page, read once when it comes back. Never a token.
const SILENT = 'gatehouse-demo-silent-check';

/** One line above the page for what just happened; `login` adds a "Log in again" link back to this path. */
function status(text, { error = false, login = false } = {}) {
  const box = $('status');
  box.hidden = !text;
  box.className = error ? 'error' : '';
  box.textContent = text ?? '';
  if (login) {
    const link = document.createElement('a');
    link.id = 'login-again';
    link.href = loginHref();
    link.textContent = 'Log in again';
    box.append(' ', link);
  }
}

function signedOut(reason) {
  $('signed-in').hidden = true;
  $('signed-out').hidden = false;
  if (reason) status(reason, { login: true });
}

const duration = (ms) => {
  const minutes = Math.round(ms / 60000);
  if (minutes < 1) return `${Math.max(1, Math.round(ms / 1000))} seconds`;
  if (minutes < 120) return `${minutes} minutes`;
  return `${Math.round(minutes / 60)} hours`;
};

async function me() {
  const res = await fetch('/auth/me', { credentials: 'same-origin' });
  return { res, body: await res.json().catch(() => undefined) };
}

function showSession(body) {
  $('signed-out').hidden = true;
  $('signed-in').hidden = false;
  $('who').textContent = body.user.name ?? body.user.email ?? body.user.sub;
  const idle = new Date(body.session.idleExpiresAt);
  $('idle-for').textContent = duration(idle.getTime() - Date.now());
  $('idle-ends').textContent = idle.toLocaleString();
  $('absolute-ends').textContent = new Date(body.session.expiresAt).toLocaleString();
}

async function refresh() {
  const silent = sessionStorage.getItem(SILENT) !== null;
  sessionStorage.removeItem(SILENT);
  const { res, body } = await me();
  if (res.ok) showSession(body);
  else if (silent) signedOut('The identity provider has no session for you (prompt=none): you are signed out.');
  else signedOut();
  show({ 'GET /auth/me': res.status, body });
}

/** What a person should read for an /api answer that is not a success: by status, with Gatehouse's stable code. */
function explain(res, body) {
  const code = body && typeof body === 'object' && typeof body.error === 'string' ? ` (${body.error})` : '';
  if (res.status === 401) return { text: `Your session has ended${code}. Log in again to continue here.`, login: true };
  if (res.status === 403) return { text: `Gatehouse refused this request${code}: you, or this page, may not do this.` };
  if (res.status === 429) {
    const after = res.headers.get('retry-after');
    return { text: `Too many requests${code}. ${after ? `Try again in ${after} seconds.` : 'Wait a moment and try again.'}` };
  }
  if (res.status >= 500) {
    const id = res.headers.get('x-request-id');
    return { text: `The service is unavailable or failed${code}, status ${res.status}. Try again shortly.${id ? ` Request id ${id}.` : ''}` };
  }
  return { text: `The request failed${code}, status ${res.status}.` };
}

async function callApi(path) {
  let res;
  try {
    res = await fetch(path, { credentials: 'same-origin' });
  } catch {
    status('Gatehouse could not be reached. Is it still running?', { error: true });
    return;
  }
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  show({ [`GET ${path.split('?')[0]}`]: res.status, body });
  if (res.ok) {
    status('');
    // A call moved the idle end on: show the new one.
    const after = await me();
    if (after.res.ok) showSession(after.body);
    return;
  }
  const { text: message, login } = explain(res, body);
  if (res.status === 401) signedOut();
  status(message, { error: true, login: login === true });
}

$('call-api').addEventListener('click', () => callApi('/api/hello?from=demo'));

$('open-sse').addEventListener('click', () => {
  const lines = [];
  const log = (line) => {
    lines.push(line);
    show(lines.join('\n'));
  };
  const events = new EventSource('/api/events');
  events.addEventListener('open', () => log('open'));
  events.addEventListener('message', (e) => {
    log(`event ${e.lastEventId}: ${e.data}`);
    if (lines.length >= 4) {
      events.close();
      log('closed');
    }
  });
  events.addEventListener('error', () => {
    events.close();
    log('closed');
  });
});

$('open-ws').addEventListener('click', () => {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`);
  const lines = [];
  const log = (line) => {
    lines.push(line);
    show(lines.join('\n'));
  };
  ws.addEventListener('open', () => {
    log('open');
    ws.send('hello through Gatehouse');
  });
  ws.addEventListener('message', (e) => {
    log(`message: ${e.data}`);
    if (lines.length >= 3) ws.close(1000, 'done');
  });
  ws.addEventListener('close', (e) => log(`close: ${e.code} ${e.reason}`));
});

$('logout').addEventListener('click', async () => {
  const res = await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    status(explain(res, body).text, { error: true });
    return;
  }
  if (body.logoutUrl) {
    location.href = body.logoutUrl;
    return;
  }
  await refresh();
});

$('login').href = loginHref();
$('login-silent').href = loginHref('&prompt=none');
$('login-silent').addEventListener('click', () => sessionStorage.setItem(SILENT, '1'));
$('switch-user').href = loginHref('&prompt=login');

refresh().catch((err) => show(String(err)));
