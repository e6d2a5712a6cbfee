import { describe, expect, it } from 'vitest';
import { asGatehouseError, GatehouseError, toErrorResponse } from '../src/errors.ts';

/** What body-parser and serve-static throw (the http-errors shape). */
const httpError = (status: number) => Object.assign(new Error('x'), { status, statusCode: status, expose: status < 500 });

describe('asGatehouseError: every thrown value as one coded error', () => {
  it('keeps a GatehouseError as it is', () => {
    const err = new GatehouseError('origin_not_allowed', { logDetail: 'd' });
    expect(asGatehouseError(err)).toBe(err);
  });

  it('maps an http-errors 404 to not_found and another 4xx to bad_request, keeping the cause', () => {
    expect(asGatehouseError(httpError(404)).code).toBe('not_found');
    const tooLarge = httpError(413);
    expect(asGatehouseError(tooLarge)).toMatchObject({ code: 'bad_request', status: 400, cause: tooLarge });
  });

  it("maps a 4xx status without the http-errors shape too (the router's URIError for a malformed %-escape)", () => {
    const uriError = Object.assign(new URIError("Failed to decode param '%E0%A4%A'"), { status: 400 });
    expect(asGatehouseError(uriError)).toMatchObject({ code: 'bad_request', status: 400, cause: uriError });
  });

  it.each([
    ['a plain Error', new Error('boom')],
    ['an http-errors 500', httpError(500)],
    ['null', null],
    ['a string', 'boom'],
  ])('turns %s into internal_error with the value as its cause', (_name, value) => {
    const known = asGatehouseError(value);
    expect(known).toMatchObject({ code: 'internal_error', status: 500 });
    expect(known.cause).toBe(value);
  });

  it('is what toErrorResponse answers with', () => {
    expect(toErrorResponse(httpError(404), 'r').body).toEqual({
      error: 'not_found',
      message: 'Nothing is mapped to this path.',
      requestId: 'r',
    });
    expect(toErrorResponse(new Error('secret detail')).body).toEqual({ error: 'internal_error', message: 'An unexpected error occurred.' });
  });
});
