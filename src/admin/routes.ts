import { Router, type Request, type Response } from 'express';
import { GatehouseError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import type { Blocklist } from '../revocation/blocklist.ts';
import type { SessionManager } from '../session/sessions.ts';
import { createAdminGuard } from './auth.ts';

/** A session store key: SHA-256, base64url. */
const SESSION_KEY = /^[A-Za-z0-9_-]{43}$/;
const SUBJECT = /^[\x21-\x7e]{1,255}$/;

/**
 * A revocation whose blocklist write Redis did not confirm: its 503 says so (`revocation: 'unconfirmed'`). The
 * write may still take effect (a frozen Redis runs what it was sent when it resumes) or never (a disconnected one
 * never got it); revoking again is harmless, so the caller retries until a 200.
 */
function unconfirmed(err: unknown): never {
  if (err instanceof GatehouseError && err.code === 'session_store_unavailable') {
    throw new GatehouseError('session_store_unavailable', {
      cause: err.cause,
      ...(err.logDetail === undefined ? {} : { logDetail: err.logDetail }),
      details: { revocation: 'unconfirmed' },
    });
  }
  throw err;
}

/**
 * The operator API, authorised by `X-Admin-Token` only (never by a browser session, which also rules out
 * CSRF). Only mounted when ADMIN_TOKEN is set. Revocations here hold on every replica within the
 * pub/sub latency, and close the WebSockets of the sessions they end.
 */
export function createAdminRoutes(deps: {
  adminToken: string;
  sessions: SessionManager;
  blocklist: Blocklist;
  maxSessionAgeMs: number;
  log: Logger;
  now?: () => number;
}): Router {
  const now = deps.now ?? Date.now;
  const router = Router();

  router.use(createAdminGuard({ adminToken: deps.adminToken }));

  // The session's store key (Session.storeKey, what logs show as `session`), never the cookie value. The
  // parameter was documented as `:id`; the path is the same, so callers of /admin/sessions/:id are unaffected.
  router.delete('/sessions/:storeKey', async (req: Request, res: Response) => {
    const key = String(req.params['storeKey']);
    if (!SESSION_KEY.test(key)) throw new GatehouseError('bad_request', { logDetail: 'malformed session store key' });
    await deps.blocklist.revokeSession(key, now() + deps.maxSessionAgeMs).catch(unconfirmed);
    await deps.sessions.destroy(key);
    deps.log.warn({ session: key, by: 'admin' }, 'session revoked');
    res.json({ revoked: 'session', id: key, storeKey: key });
  });

  router.post('/users/:sub/revoke', async (req: Request, res: Response) => {
    const sub = String(req.params['sub']);
    if (!SUBJECT.test(sub)) throw new GatehouseError('bad_request', { logDetail: 'malformed subject' });
    const notBefore = now();
    await deps.blocklist.revokeUser(sub, notBefore, deps.maxSessionAgeMs).catch(unconfirmed);
    const destroyed = await deps.sessions.destroyUser(sub);
    deps.log.warn({ sub, destroyed, by: 'admin' }, 'user revoked');
    res.json({ revoked: 'user', sub, sessions: destroyed, notBefore: new Date(notBefore).toISOString() });
  });

  return router;
}
