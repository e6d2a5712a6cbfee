// The demo SPA: it never sees a token. Every call carries only the session cookie.
const $ = (id) => document.getElementById(id);
const show = (value) => {
  $('output').textContent = typeof value === 'string' ? value : JSON.stringify(value, null, 2);
};

async function refresh() {
  const res = await fetch('/auth/me', { credentials: 'same-origin' });
  const signedIn = res.ok;
  $('signed-in').hidden = !signedIn;
  $('signed-out').hidden = signedIn;
  const body = await res.json();
  if (signedIn) {
    $('who').textContent = body.user.name ?? body.user.email ?? body.user.sub;
    $('expires').textContent = new Date(body.session.expiresAt).toLocaleString();
  }
  show({ 'GET /auth/me': res.status, body });
}

$('call-api').addEventListener('click', async () => {
  const res = await fetch('/api/hello?from=demo', { credentials: 'same-origin' });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  show({ 'GET /api/hello': res.status, body });
});

$('open-ws').addEventListener('click', () => {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/ws`);
  const lines = [];
  const log = (line) => { lines.push(line); show(lines.join('\n')); };
  ws.addEventListener('open', () => { log('open'); ws.send('hello through Gatehouse'); });
  ws.addEventListener('message', (e) => { log(`message: ${e.data}`); if (lines.length >= 3) ws.close(1000, 'done'); });
  ws.addEventListener('close', (e) => log(`close: ${e.code} ${e.reason}`));
});

$('logout').addEventListener('click', async () => {
  const res = await fetch('/auth/logout', { method: 'POST', credentials: 'same-origin' });
  const body = await res.json();
  if (body.logoutUrl) {
    location.href = body.logoutUrl;
    return;
  }
  await refresh();
});

refresh().catch((err) => show(String(err)));
