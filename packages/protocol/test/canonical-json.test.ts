/**
 * The one canonical JSON (RFC 8785) every package hashes with: the RFC's own examples, key order
 * never mattering, and a clear TypeError for what has no JSON form.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import canonicalize from 'canonicalize';
import fc from 'fast-check';
import { canonicalJson } from '../src/index.ts';

describe('canonicalJson (RFC 8785)', () => {
  it('serialises the RFC 8785 sample (section 3.2.2) as the RFC does', () => {
    const input = JSON.parse(
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}',
    );
    assert.equal(
      canonicalJson(input),
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts keys by UTF-16 code units (RFC 8785 section 3.2.3)', () => {
    const input = {
      '\u20ac': 'Euro Sign',
      '\r': 'Carriage Return',
      '\ufb33': 'Hebrew Letter Dalet With Dagesh',
      '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face',
      '\u0080': 'Control',
      '\u00f6': 'Latin Small Letter O With Diaeresis',
    };
    assert.equal(
      canonicalJson(input),
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it('is the same text whatever the key order, and drops what JSON drops', () => {
    assert.equal(canonicalJson({ b: 2, a: [1, { d: 4, c: 3 }] }), '{"a":[1,{"c":3,"d":4}],"b":2}');
    assert.equal(canonicalJson({ a: [1, { c: 3, d: 4 }], b: 2 }), '{"a":[1,{"c":3,"d":4}],"b":2}');
    assert.equal(canonicalJson({ a: undefined, b: [undefined], c: null }), '{"b":[null],"c":null}');
  });

  it('refuses what has no JSON form with a TypeError', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const bad of [cycle, { n: Number.NaN }, { big: 1n }, { s: '\ud800' }, undefined])
      assert.throws(() => canonicalJson(bad), TypeError);
  });
});

describe('canonicalJson matches the reference implementation', () => {
  it('gives the text `canonicalize` gives for generated JSON values, and refuses what it refuses', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        assert.equal(canonicalJson(v), canonicalize(v));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.anything({ withBoxedValues: false, withNullPrototype: true, withObjectString: true }),
        (v) => {
          let ours: string | Error;
          let theirs: string | undefined | Error;
          try {
            ours = canonicalJson(v);
          } catch (err) {
            ours = err as Error;
          }
          try {
            theirs = canonicalize(v);
          } catch (err) {
            theirs = err as Error;
          }
          if (theirs instanceof Error || theirs === undefined) assert.ok(ours instanceof TypeError);
          else assert.equal(ours, theirs);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
