import { describe, expect, it } from 'vitest';
import { splitApiTarget } from '../../src/policy/path.ts';

describe('splitApiTarget', () => {
  it.each([
    ['/api', '/', ''],
    ['/api/', '/', ''],
    ['/api?x=1', '/', '?x=1'],
    ['/api/?x=1', '/', '?x=1'],
    ['/api/v1/users?x=1', '/v1/users', '?x=1'],
    ['/api/v1/users/', '/v1/users/', ''],
    ['/api/v1/a%20b', '/v1/a%20b', ''],
    ['/api/v1/%C3%A9t%C3%A9', '/v1/%C3%A9t%C3%A9', ''],
    ['/api/v1/a%3Ab%40c', '/v1/a%3Ab%40c', ''],
    ["/api/v1/a:b@c!$&'()*+,=", "/v1/a:b@c!$&'()*+,=", ''],
    ['/api/v1/file.json', '/v1/file.json', ''],
    ['/api/v1/.well-known/x', '/v1/.well-known/x', ''],
    ['/api/v1/...', '/v1/...', ''],
    ['/api/v1/..a', '/v1/..a', ''],
    ['/api/v1/a..', '/v1/a..', ''],
    ['/api/v1/~user', '/v1/~user', ''],
    // The query is opaque: forwarded as sent, never used for routing.
    ['/api/v1?next=/../admin&p=%2e%2e%2f', '/v1', '?next=/../admin&p=%2e%2e%2f'],
    ['/api/v1?a=%252e;b=\\', '/v1', '?a=%252e;b=\\'],
  ])('accepts %s → path %s query %s', (url, path, query) => {
    expect(splitApiTarget(url)).toEqual({ path, query });
  });

  it.each([
    // dot segments, raw and encoded in every case mix
    '/api/..',
    '/api/.',
    '/api/public/../admin',
    '/api/public/./admin',
    '/api/public/..',
    '/api/public/.',
    '/api/public/%2e%2e/admin',
    '/api/public/%2E%2E/admin',
    '/api/public/.%2e/admin',
    '/api/public/%2e./admin',
    '/api/public/%2e/admin',
    '/api/%2e%2e',
    '/api/public/%2e%2e?x=1',
    // double encoding
    '/api/public/%252e%252e/admin',
    '/api/x%252f..',
    '/api/%2525',
    '/api/a%25',
    // encoded separators
    '/api/orders%2F..%2Fadmin',
    '/api/public%2fadmin',
    '/api/public%5cadmin',
    '/api/public%5Cadmin',
    // backslashes
    '/api/public\\..\\admin',
    '/api/public\\admin',
    '/api\\admin',
    // empty segments
    '/api//admin',
    '/api/public//admin',
    '/api/a///b',
    // path parameters
    '/api/admin;x=1',
    '/api/public;/../admin',
    '/api/a;b/c',
    // fragments, raw or in the query
    '/api/private/data#/public',
    '/api/private?x=1#frag',
    '/api/x#',
    // encoded unreserved characters: a prefix match on the raw path would miss what the backend decodes
    '/api/%61dmin/users',
    '/api/v%32/x',
    '/api/%41DMIN',
    '/api/a%2Db',
    '/api/a%5Fb',
    '/api/a%7Eb',
    '/api/a%7eb',
    // malformed escapes, NUL, controls, spaces, non-ASCII
    '/api/a%zz',
    '/api/a%2',
    '/api/a%',
    '/api/a%00b',
    '/api/a b',
    '/api/a\tb',
    '/api/a\u0000b',
    '/api/é',
    '/api/a"b',
    '/api/a<b>',
    '/api/a{b}',
    '/api/a|b',
    '/api/a^b',
    '/api/a`b',
  ])('rejects %s', (url) => {
    expect(splitApiTarget(url)).toBeUndefined();
  });

  it('keeps the private path from hiding behind an encoded fragment', () => {
    // %23 stays opaque inside one segment: routing sees "/private%23", never "/public".
    expect(splitApiTarget('/api/private%23/public')).toEqual({ path: '/private%23/public', query: '' });
  });
});
