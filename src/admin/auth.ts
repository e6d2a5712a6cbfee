import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { GatehouseError } from '../errors.ts';

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The admin credential check, as Express middleware: what /admin and the main port's /metrics sit behind.
 * `X-Admin-Token` equal to ADMIN_TOKEN; a token in the query string is refused outright.
 */
export function createAdminGuard(deps: { adminToken: string }): (req: Request, res: Response, next: NextFunction) => void {
  const expected = digest(deps.adminToken);
  return (req, res, next) => {
    res.setHeader('cache-control', 'no-store');
    const search = req.originalUrl.includes('?') ? req.originalUrl.slice(req.originalUrl.indexOf('?')) : '';
    // Secrets in URLs end up in logs and histories.
    if (/[?&](token|admin_token|x-admin-token)=/i.test(search))
      throw new GatehouseError('unauthorized', { logDetail: 'admin token in the query string' });
    const given = req.headers['x-admin-token'];
    // Hash both sides so the comparison is constant-time regardless of the length the caller sent.
    if (typeof given !== 'string' || !timingSafeEqual(digest(given), expected)) {
      throw new GatehouseError('unauthorized', { logDetail: 'missing or wrong admin token' });
    }
    next();
  };
}
