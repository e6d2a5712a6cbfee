import { describe, expect, it } from 'vitest';
import { clearingCookies, DUPLICATE_COOKIE, readCookie } from '../../src/session/cookie.ts';

const N = '__Host-gh_session';

/**
 * readCookie finds Gatehouse's one cookie: exact names (RFC 6265bis §4.2.1: only SP/HTAB around a
 * cookie-pair), and DUPLICATE_COOKIE when the name comes more than once (cookie tossing, OWASP Session
 * Management), so no caller can pick a planted copy.
 */
describe('readCookie', () => {
  it.each<[string, string | string[] | undefined, string | undefined]>([
    ['no header', undefined, undefined],
    ['other cookies only', 'a=1; b=2', undefined],
    ['the cookie alone', `${N}=v`, 'v'],
    ['among others', `a=1; ${N}=v; b=2`, 'v'],
    ['without the space after ;', `a=1;${N}=v;b=2`, 'v'],
    ['SP and HTAB around the pair', ` \t${N}=v \t; a=1`, 'v'],
    ['a quoted value', `${N}="v"`, 'v'],
    ['an empty value', `${N}=`, ''],
    ['the name inside another cookie value', `x=${N}=m; ${N}=v`, 'v'],
    ['the name as a value', `x=${N}; ${N}=v`, 'v'],
    ['the name without =', `${N}; a=1`, undefined],
    ['a longer name', `${N}x=m; ${N}_=m`, undefined],
    ['a prefixed name', `x${N}=m`, undefined],
    ['across two Cookie lines', ['a=1', `${N}=v`], 'v'],
  ])('%s', (_label, header, expected) => {
    expect(readCookie(header, N)).toBe(expected);
  });

  it.each<[string, string | string[]]>([
    ['the attacker first', `${N}=mallory; ${N}=alice`],
    ['the attacker last', `${N}=alice; ${N}=mallory`],
    ['twice the same value', `${N}=alice; ${N}=alice`],
    ['an empty copy', `${N}=; ${N}=alice`],
    ['a quoted copy', `${N}="mallory"; ${N}=alice`],
    ['between other cookies', `a=1; ${N}=mallory; b=2; ${N}=alice; c=3`],
    ['no space after ;', `${N}=mallory;${N}=alice`],
    ['with SP/HTAB before the second', `${N}=mallory;\t ${N}=alice`],
    ['on two Cookie lines', [`${N}=mallory`, `${N}=alice`]],
    ['three copies', `${N}=a; ${N}=b; ${N}=c`],
  ])('a duplicated name is DUPLICATE_COOKIE: %s', (_label, header) => {
    expect(readCookie(header, N)).toBe(DUPLICATE_COOKIE);
  });

  // Lookalikes are other cookies: trimming Unicode whitespace, decoding or folding case would turn them into
  // a second copy of ours (a denial of service) or, in a parser that picks the first, into the session.
  it.each([
    ['NBSP before the name', `\u00a0${N}=mallory`],
    ['NBSP after the name', `${N}\u00a0=mallory`],
    ['ideographic space before the name', `\u3000${N}=mallory`],
    ['ideographic space after the name', `${N}\u3000=mallory`],
    ['NEL before the name', `\u0085${N}=mallory`],
    ['line separator before the name', `\u2028${N}=mallory`],
    ['BOM before the name', `\ufeff${N}=mallory`],
    ['VT before the name', `\u000b${N}=mallory`],
    ['FF before the name', `\u000c${N}=mallory`],
    ['SP between the name and =', `${N} =mallory`],
    ['a percent-encoded name', '__Host-gh%5Fsession=mallory'],
    ['a percent-encoded prefix', '%5F%5FHost-gh_session=mallory'],
    ['lower case', '__host-gh_session=mallory'],
    ['upper case', '__HOST-GH_SESSION=mallory'],
    ['without the prefix', 'gh_session=mallory'],
  ])('%s is not our cookie, before or after the real one', (_label, lookalike) => {
    expect(readCookie(lookalike, N)).toBeUndefined();
    expect(readCookie(`${lookalike}; ${N}=alice`, N)).toBe('alice');
    expect(readCookie(`${N}=alice; ${lookalike}`, N)).toBe('alice');
  });
});

describe('clearingCookies', () => {
  const attrs = (c: string) => c.split(';').map((a) => a.trim());

  it('clears the host-only __Host- cookie: Path=/, Secure, no Domain, expired', () => {
    const out = clearingCookies(N, { secure: true, sameSite: 'Lax' });
    expect(out).toHaveLength(1);
    const a = attrs(out[0] ?? '');
    expect(a[0]).toBe(`${N}=`);
    expect(a).toEqual(expect.arrayContaining(['Path=/', 'Secure', 'Max-Age=0', 'Expires=Thu, 01 Jan 1970 00:00:00 GMT']));
    expect(a.some((x) => /^domain=/i.test(x))).toBe(false);
  });

  it('with SESSION_COOKIE_DOMAIN, clears both the host-only and the Domain cookie', () => {
    const out = clearingCookies('gh_session', { secure: true, sameSite: 'Lax', domain: 'example.test' });
    expect(out).toHaveLength(2);
    expect(out.map((c) => attrs(c).find((x) => /^domain=/i.test(x)))).toEqual([undefined, 'Domain=example.test']);
    for (const c of out) expect(attrs(c)).toEqual(expect.arrayContaining(['gh_session=', 'Path=/', 'Max-Age=0']));
  });
});
