/**
 * The one mapping from a refused HTTP answer to a local error that every client of the control
 * plane uses (SDK, CLI, console, launcher, watchdog): the wire shape, a code this version does not
 * know, a body that is not JSON or is empty, and a shed 429 with its retryAfterMs.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  KillpathError,
  codeForStatus,
  errorFromWire,
  errorFromWireText,
  retryAfterMs,
} from '../src/index.ts';

describe('errorFromWire', () => {
  it('a wire error keeps its code, message and details', () => {
    const err = errorFromWire(409, {
      error: { code: 'halted', message: 'run r1 is halted', details: { directiveId: 'd9', rev: 12 } },
    });
    assert.ok(err instanceof KillpathError);
    assert.equal(err.code, 'halted');
    assert.equal(err.message, 'run r1 is halted');
    assert.deepEqual(err.details, { directiveId: 'd9', rev: 12 });
  });

  it('a wire error without details has none', () => {
    const err = errorFromWire(404, { error: { code: 'not_found', message: 'no such run' } });
    assert.equal(err.code, 'not_found');
    assert.equal(err.details, undefined);
  });

  it('a code this version does not know falls back to the status and names the code', () => {
    const err = errorFromWire(409, { error: { code: 'frozen_solid', message: 'later', details: { a: 1 } } });
    assert.equal(err.code, 'conflict');
    assert.equal(err.message, 'later (unknown error code "frozen_solid", HTTP 409)');
    assert.deepEqual(err.details, { code: 'frozen_solid', details: { a: 1 } });
    assert.equal(errorFromWire(502, { error: { code: 'gone_fishing', message: '' } }).code, 'unavailable');
  });

  it('a body that is not the wire shape falls back to the status', () => {
    for (const body of [undefined, null, 'oops', 42, { message: 'nope' }, { error: 'string' }]) {
      const err = errorFromWire(403, body, 'http://cp/v1/x');
      assert.equal(err.code, 'forbidden');
      assert.equal(err.message, 'HTTP 403 from http://cp/v1/x');
      assert.equal(err.details, undefined);
    }
    assert.equal(errorFromWire(500, undefined).message, 'HTTP 500 from the control plane');
  });

  it('a 429 keeps retryAfterMs, which retryAfterMs reads', () => {
    const err = errorFromWire(429, {
      error: { code: 'overloaded', message: 'shed', details: { retryAfterMs: 3000 } },
    });
    assert.equal(err.code, 'overloaded');
    assert.equal(retryAfterMs(err), 3000);
    assert.equal(retryAfterMs(errorFromWire(429, undefined)), 1000, 'a bare 429 waits the fallback');
    assert.equal(retryAfterMs(errorFromWire(429, undefined), 250), 250);
    assert.equal(retryAfterMs(errorFromWire(409, { error: { code: 'conflict', message: 'x' } })), null);
    assert.equal(retryAfterMs(new Error('plain')), null);
  });
});

describe('errorFromWireText', () => {
  it('parses a wire error', () => {
    const err = errorFromWireText(
      401,
      JSON.stringify({ error: { code: 'unauthenticated', message: 'bad token' } }),
    );
    assert.equal(err.code, 'unauthenticated');
    assert.equal(err.message, 'bad token');
  });

  it('a body that is not JSON says so and falls back to the status', () => {
    const err = errorFromWireText(502, '<html>Bad Gateway</html>', 'http://cp');
    assert.equal(err.code, 'unavailable');
    assert.equal(err.message, 'unexpected answer from http://cp (HTTP 502, not JSON)');
  });

  it('an empty body falls back to the status', () => {
    const err = errorFromWireText(404, '  ', 'http://cp/v1/runs/r1');
    assert.equal(err.code, 'not_found');
    assert.equal(err.message, 'HTTP 404 from http://cp/v1/runs/r1');
  });
});

describe('codeForStatus', () => {
  it('maps the statuses the control plane answers with, 5xx to unavailable, the rest to internal', () => {
    assert.equal(codeForStatus(400), 'invalid_request');
    assert.equal(codeForStatus(413), 'payload_too_large');
    assert.equal(codeForStatus(429), 'overloaded');
    assert.equal(codeForStatus(503), 'unavailable');
    assert.equal(codeForStatus(418), 'internal');
    assert.equal(codeForStatus(0), 'internal');
  });
});
