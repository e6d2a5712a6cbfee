/**
 * A scripted browser over fetch: one cookie jar per origin (Gatehouse's and the IdP's stay apart),
 * manual redirects, and the oidc-provider development login and consent forms filled in.
 */
export class Browser {
  readonly jars = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | undefined {
    return this.jars.get(origin)?.get(name);
  }

  setCookie(origin: string, name: string, value: string): void {
    if (!this.jars.has(origin)) this.jars.set(origin, new Map());
    this.jars.get(origin)?.set(name, value);
  }

  cookieHeader(url: string): string | undefined {
    const jar = this.jars.get(new URL(url).origin);
    if (!jar || jar.size === 0) return undefined;
    return [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async fetch(url: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const cookie = this.cookieHeader(url);
    if (cookie && !headers.has('cookie')) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    const origin = new URL(url).origin;
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '';
      if (!this.jars.has(origin)) this.jars.set(origin, new Map());
      if (expired) this.jars.get(origin)?.delete(name);
      else this.jars.get(origin)?.set(name, value);
    }
    return res;
  }

  /**
   * Logs in through Gatehouse: /auth/login → IdP → login form → consent → callback.
   * Returns the final Location Gatehouse redirected to.
   */
  async login(gatehouseUrl: string, username = 'alice', next?: string): Promise<{ location: string; callbackStatus: number }> {
    let url = `${gatehouseUrl}/auth/login${next !== undefined ? `?next=${encodeURIComponent(next)}` : ''}`;
    let init: RequestInit = {};
    for (let step = 0; step < 25; step++) {
      const res = await this.fetch(url, init);
      init = {};
      const isCallback = url.startsWith(`${gatehouseUrl}/auth/callback`);
      if (isCallback) {
        await res.body?.cancel();
        return { location: res.headers.get('location') ?? '', callbackStatus: res.status };
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel();
        url = new URL(res.headers.get('location') ?? '', url).href;
        continue;
      }
      const html = await res.text();
      if (res.status !== 200) throw new Error(`login step ${step} at ${url}: ${res.status} ${html.slice(0, 300)}`);
      const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
      if (!form) throw new Error(`no form at ${url}: ${html.slice(0, 300)}`);
      const body = new URLSearchParams();
      for (const input of (form[2] ?? '').matchAll(/<input[^>]*>/gi)) {
        const name = /name="([^"]+)"/.exec(input[0])?.[1];
        if (!name) continue;
        const value = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
        body.set(name, name === 'login' ? username : name === 'password' ? 'any-password' : value);
      }
      url = new URL(form[1] ?? '', url).href;
      init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    }
    throw new Error('login did not finish in 25 steps');
  }
}
