import { describe, expect, it } from 'vitest';
import { overflowInRequestLine } from '../../src/http/client-error.ts';

/** Which of 414 and 431 a head over 16 KiB gets, from the chunk node:http was parsing when it overflowed. */
describe('overflowInRequestLine', () => {
  const at = (text: string) => overflowInRequestLine(Buffer.from(text, 'latin1'), text.length);

  it.each([
    ['a request line alone', `GET /api/${'a'.repeat(100)}`],
    ['a request line after a previous request on the connection', `x\r\n\r\nPOST /api/${'a'.repeat(100)}`],
    ['an absolute-form target', `GET http://h/${'a'.repeat(100)}`],
  ])('%s → the request line (414)', (_name, text) => {
    expect(at(text)).toBe(true);
  });

  it.each([
    ['a header line', `GET /api/x HTTP/1.1\r\nHost: h\r\nCookie: a=${'x'.repeat(100)}`],
    ['many header lines', `GET /api/x HTTP/1.1\r\n${'X-H: v\r\n'.repeat(50)}X-H`],
    ['the middle of a line that began in an earlier chunk', 'a'.repeat(100)],
    ['a header line whose value looks like a request line', `GET /x HTTP/1.1\r\nX: GET /${'a'.repeat(50)}`],
  ])('%s → the headers (431)', (_name, text) => {
    expect(at(text)).toBe(false);
  });

  it('looks only at what was parsed before the error', () => {
    const text = `GET /api/${'a'.repeat(100)} HTTP/1.1\r\nCookie: x`;
    expect(overflowInRequestLine(Buffer.from(text), 50)).toBe(true);
    expect(overflowInRequestLine(Buffer.from(text), text.length)).toBe(false);
  });
});
