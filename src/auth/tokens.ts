/** Reads claims from a JWT's payload without verifying it: only for facts about our own tokens (exp, jti). */
export function peekJwtClaims(token: string): { exp?: number; jti?: string } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<string, unknown>;
    return {
      ...(typeof payload['exp'] === 'number' ? { exp: payload['exp'] } : {}),
      ...(typeof payload['jti'] === 'string' ? { jti: payload['jti'] } : {}),
    };
  } catch {
    return undefined;
  }
}

/** When the access token stops being usable: expires_in when given, else the JWT's exp, else unknown. */
export function accessTokenExpiry(expiresIn: number | undefined, accessToken: string, at: number): number | undefined {
  if (expiresIn !== undefined) return at + expiresIn * 1000;
  const exp = peekJwtClaims(accessToken)?.exp;
  return exp !== undefined ? exp * 1000 : undefined;
}
