import { describe, expect, it } from 'vitest';
import { classifyIdpError, translateIdpError } from '../../src/auth/oidc.ts';
import { GatehouseError } from '../../src/errors.ts';

/** The shape openid-client gives an OAuth error answer (ResponseBodyError): its code and the IdP's `error`. */
const oauthError = (error: string) =>
  Object.assign(new Error(`server responded with an error: ${error}`), { code: 'OAUTH_RESPONSE_BODY_ERROR', error, status: 400 });

describe('openid-client errors are classified in one place (auth/oidc.ts), by code and OAuth error', () => {
  it.each([
    ['invalid_grant', oauthError('invalid_grant'), 'invalid_grant'],
    ['access_denied', oauthError('access_denied'), 'access_denied'],
    ['another OAuth error', oauthError('invalid_client'), 'failed'],
    ['a network failure', Object.assign(new Error('fetch failed'), { code: 'ECONNREFUSED' }), 'failed'],
    ['invalid_grant in the message only', new Error('invalid_grant'), 'failed'],
    ['idp_unavailable before discovery', new GatehouseError('idp_unavailable'), 'failed'],
    ['a thrown string', 'boom', 'failed'],
  ])('%s → %s', (_name, err, kind) => {
    expect(classifyIdpError(err).kind).toBe(kind);
  });

  it('keeps the code and OAuth error for the log', () => {
    expect(classifyIdpError(oauthError('invalid_client'))).toEqual({
      kind: 'failed',
      code: 'OAUTH_RESPONSE_BODY_ERROR',
      error: 'invalid_client',
    });
  });

  it('on the login path, a refused grant is login_failed and anything else idp_error', () => {
    expect(translateIdpError(oauthError('invalid_grant'), 'code exchange')).toMatchObject({
      code: 'login_failed',
      logDetail: 'code exchange: OAUTH_RESPONSE_BODY_ERROR (invalid_grant)',
    });
    expect(translateIdpError(oauthError('access_denied'), 'code exchange').code).toBe('login_failed');
    const reset = Object.assign(new Error('x'), { code: 'ECONNRESET' });
    expect(translateIdpError(reset, 'userinfo')).toMatchObject({ code: 'idp_error', logDetail: 'userinfo: ECONNRESET' });
    const known = new GatehouseError('idp_unavailable');
    expect(translateIdpError(known, 'code exchange')).toBe(known);
  });
});
