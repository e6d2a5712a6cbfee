import express, { Router, type Request, type Response } from 'express';
import { loginSlot, type LoginFlow } from '../auth/login.ts';
import type { Config } from '../config/types.ts';
import { asGatehouseError, GatehouseError } from '../errors.ts';
import type { Metrics } from '../observability/metrics.ts';
import { isCrossSiteRequest, type OriginPolicy } from '../policy/origin.ts';
import {
  clearCookie,
  clearingCookies,
  clearingHeaders,
  cookieNamesStartingWith,
  DUPLICATE_COOKIE,
  loginBindingCookie,
  loginBindingCookieName,
  readCookie,
  readSessionCookie,
  serializeCookie,
  serializeSessionCookie,
  type CookieAttributes,
} from '../session/cookie.ts';
import type { SessionManager } from '../session/sessions.ts';

const LOGIN_BINDING_MAX_AGE_SECONDS = 600;
/**
 * Logins one browser may have pending at once. Each has its own cookie; without a cap, logins started and
 * abandoned would pile cookies up for ten minutes each until the Cookie header outgrew the server's limit.
 */
const MAX_PENDING_LOGINS = 4;

/**
 * A cookie sent more than once counts as absent (cookie tossing, OWASP Session Management): a sibling
 * subdomain chooses which copy comes first, so neither is trusted. For the login binding this makes the
 * callback fail with invalid_state; for the session, the request has none.
 */
function single<T>(read: T | typeof DUPLICATE_COOKIE): T | undefined {
  return read === DUPLICATE_COOKIE ? undefined : read;
}

function headerValue(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** /auth/* and the redirect URI: login, callback, me, logout. Everything here is no-store: none of it may sit in a shared cache. */
export function createAuthRoutes(deps: {
  config: Config;
  login: LoginFlow;
  sessions: SessionManager;
  origins: () => OriginPolicy;
  backchannelLogout: (logoutToken: unknown) => Promise<number>;
  /** A login completed: the IdP answered its token request (ends an IdP outage in the log). */
  idpAnswered?: () => void;
  metrics?: Metrics;
}): Router {
  const { config, login, sessions } = deps;
  const cookie: CookieAttributes = {
    secure: config.session.secure,
    sameSite: config.session.sameSite,
    ...(config.session.domain ? { domain: config.session.domain } : {}),
  };
  // The binding cookie must survive the top-level redirect back from the IdP, so it is Lax even when the session is Strict.
  const bindingAttrs: CookieAttributes = { secure: config.session.secure, sameSite: 'Lax' };
  const bindingPrefix = `${loginBindingCookieName(config.session.secure)}.`;
  const bindingCookie = (state: string) => loginBindingCookie(config.session.secure, loginSlot(state));
  const sessionCookie = config.session.cookieName;
  const duplicateClearing = clearingHeaders(sessionCookie, cookie);
  const router = Router();

  router.use(['/auth', config.oidc.redirectPath], (_req, res, next) => {
    res.setHeader('cache-control', 'no-store');
    next();
  });

  router.get('/auth/login', async (req: Request, res: Response) => {
    const query = (name: string) => req.query[name] as unknown;
    const next = typeof query('next') === 'string' ? query('next') : undefined;
    const started = await login.begin({ next, prompt: query('prompt'), loginHint: query('login_hint') });
    const pending = [...new Set(cookieNamesStartingWith(req.headers.cookie, bindingPrefix))];
    const dropped = pending.slice(0, Math.max(0, pending.length - (MAX_PENDING_LOGINS - 1)));
    res.setHeader('set-cookie', [
      ...dropped.map((name) => clearCookie(name, bindingAttrs)),
      serializeCookie(
        loginBindingCookie(config.session.secure, started.slot),
        started.binding,
        bindingAttrs,
        LOGIN_BINDING_MAX_AGE_SECONDS,
      ),
    ]);
    res.redirect(302, started.authorizationUrl);
  });

  router.get(config.oidc.redirectPath, async (req: Request, res: Response) => {
    const query = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?') + 1) : '';
    const states = new URLSearchParams(query).getAll('state');
    const binding = states.length === 1 && states[0] ? bindingCookie(states[0]) : undefined;
    // A callback with no state or several (refused by complete()) names no login: every pending one in this browser ends.
    const clearBinding = (binding ? [binding] : [...new Set(cookieNamesStartingWith(req.headers.cookie, bindingPrefix))]).map((name) =>
      clearCookie(name, bindingAttrs),
    );
    try {
      const result = await login.complete({
        query,
        binding: binding ? single(readCookie(req.headers.cookie, binding)) : undefined,
        previousSecret: single(readSessionCookie(req.headers.cookie, sessionCookie)),
        client: {
          ...(req.ip ? { ip: req.ip } : {}),
          ...(typeof req.headers['user-agent'] === 'string' ? { userAgent: req.headers['user-agent'] } : {}),
        },
      });
      deps.idpAnswered?.();
      if (result.kind === 'signed_out') {
        // A silent check (prompt=none) that found no IdP session: the SPA gets its page back, signed out, not an error.
        res.setHeader('set-cookie', clearBinding);
        res.redirect(302, result.next);
        return;
      }
      deps.metrics?.loginSucceeded();
      res.setHeader('set-cookie', [
        serializeSessionCookie(sessionCookie, result.secret, cookie, config.session.maxAgeSeconds),
        ...clearBinding,
      ]);
      res.redirect(302, result.next);
    } catch (err) {
      // A failed callback also ends this login attempt in this browser (and only this one: other tabs keep theirs).
      if (clearBinding.length > 0) res.setHeader('set-cookie', clearBinding);
      deps.metrics?.loginFailed(asGatehouseError(err).code);
      throw err;
    }
  });

  router.get('/auth/me', async (req: Request, res: Response) => {
    const read = readSessionCookie(req.headers.cookie, sessionCookie);
    if (read === DUPLICATE_COOKIE)
      throw new GatehouseError('unauthorized', { headers: duplicateClearing, logDetail: 'session cookie sent more than once' });
    const session = await sessions.load(read);
    if (!session) throw new GatehouseError('unauthorized');
    sessions.touch(session);
    const { sub, email, name } = session.claims;
    res.json({
      user: { sub, ...(email !== undefined ? { email } : {}), ...(name !== undefined ? { name } : {}) },
      claims: session.claims,
      session: { expiresAt: new Date(session.expiresAt).toISOString(), idleExpiresAt: new Date(session.idleExpiresAt).toISOString() },
    });
  });

  router.post('/auth/logout', async (req: Request, res: Response) => {
    if (isCrossSiteRequest(deps.origins(), headerValue(req, 'origin'), headerValue(req, 'sec-fetch-site'))) {
      throw new GatehouseError('origin_not_allowed', { logDetail: 'cross-site logout refused' });
    }
    const read = readSessionCookie(req.headers.cookie, sessionCookie);
    const session = await sessions.load(single(read));
    const result = await login.logout(session);
    if (session) deps.metrics?.loggedOut('rp_initiated');
    res.setHeader('set-cookie', read === DUPLICATE_COOKIE ? clearingCookies(sessionCookie, cookie) : clearCookie(sessionCookie, cookie));
    res.setHeader('clear-site-data', '"cache", "cookies", "storage"');
    res.json({ ok: true, ...(result.logoutUrl ? { logoutUrl: result.logoutUrl } : {}) });
  });

  // Called by the IdP server to server, never by a browser: no cookies, no CSRF concerns, a small form body.
  router.post(
    '/auth/backchannel-logout',
    express.urlencoded({ extended: false, limit: '32kb', parameterLimit: 10 }),
    async (req: Request, res: Response) => {
      const body = req.body as Record<string, unknown> | undefined;
      await deps.backchannelLogout(body?.['logout_token']);
      deps.metrics?.loggedOut('backchannel');
      res.status(200).json({ ok: true });
    },
  );

  router.all('/auth/logout', (_req: Request, res: Response) => {
    // RFC 9110 §15.5.6: a 405 names the methods that would work.
    res.setHeader('allow', 'POST');
    throw new GatehouseError('method_not_allowed', { logDetail: 'logout must be a POST' });
  });

  return router;
}
