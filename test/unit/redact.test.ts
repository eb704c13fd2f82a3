import { describe, expect, it } from 'vitest';
import { redact } from '../../src/core/redact.js';

describe('redact', () => {
  it('hides key=value and JSON secrets, URL userinfo', () => {
    expect(redact('password=hunter22 ok')).toBe('password=*** ok');
    expect(redact('{"passphrase": "opensesame"}')).toBe('{"passphrase": "***"}');
    expect(redact('{"token": "dtr_abcdef"}')).toBe('{"token": "***"}');
    expect(redact('https://user:pw@host/x')).toBe('https://user:***@host/x');
  });

  it('hides a quoted secret whole, spaces included, and an authorization header but its scheme', () => {
    expect(redact('password="correct horse battery" rest')).toBe('password="***" rest');
    expect(redact(`{"passphrase": "two words here", "n": 1}`)).toBe(`{"passphrase": "***", "n": 1}`);
    expect(redact("passphrase: 'a b c'")).toBe("passphrase: '***'");
    expect(redact('authorization: Bearer dtr_abc def')).toBe('authorization: Bearer ***');
    expect(redact('{"Authorization": "Basic dXNlcjpwYXNz"}')).toBe('{"Authorization": "Basic ***"}');
    expect(redact('Authorization=dtr_plain')).toBe('Authorization=***');
    // Nothing is left of the secret anywhere.
    for (const out of [
      redact('password="correct horse battery"'),
      redact('authorization: Bearer dtr_abc def'),
    ])
      for (const part of ['correct', 'horse', 'battery', 'dtr_abc', 'def']) expect(out).not.toContain(part);
  });

  it('keeps bare JSON literals, so --json output stays parseable', () => {
    const text = JSON.stringify({ encryption: { passphrase: false }, token: null, password: true }, null, 2);
    expect(redact(text)).toBe(text);
    expect(JSON.parse(redact(text))).toEqual({
      encryption: { passphrase: false },
      token: null,
      password: true,
    });
    // A secret that merely starts like a literal is still hidden.
    expect(redact('passphrase=falsehood')).toBe('passphrase=***');
    expect(redact('{"passphrase": "null-and-void"}')).toBe('{"passphrase": "***"}');
  });
});
