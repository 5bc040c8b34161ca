// `signedText` (web/job.js) must write every figure exactly as the server's `signed::text`
// (crates/proctor-server/src/web/signed.rs) does: the attestation page's figures check compares
// the two strings, so any difference is a false "FAILED". The expected strings are what Rust
// writes (serde_json's `Value` read from the statement, then `Display`): integers as they are,
// floats as the shortest digits that read back, never with an exponent.
//
//   node --test crates/proctor-server/web/tests/signed-text.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { signedText } from '../job.js';

test('job.js imports outside a browser and exports signedText', () => {
  assert.equal(typeof signedText, 'function');
});

test('the cases of signed.rs: numbers read as Rust writes them', () => {
  // signed.rs `numbers_read_as_javascript_reads_them`, value by value.
  for (const [value, expected] of [
    [1.0, '1'],
    [0.1, '0.1'],
    [0.30000000000000004, '0.30000000000000004'],
    [-2.5, '-2.5'],
    [1e-7, '0.0000001'],
    [12345678, '12345678'],
    [null, '—'],
  ]) {
    assert.equal(signedText(value), expected, String(value));
  }
});

test('absent, strings and booleans', () => {
  assert.equal(signedText(undefined), '—');
  assert.equal(signedText(''), '');
  assert.equal(signedText('succeeded'), 'succeeded');
  assert.equal(signedText('2026-01-02T03:04:05Z'), '2026-01-02T03:04:05Z');
  assert.equal(signedText('—'), '—');
  assert.equal(signedText('<b>&'), '<b>&', 'text, not HTML');
  assert.equal(signedText(true), 'true');
  assert.equal(signedText(false), 'false');
});

test('numbers that JavaScript writes with an exponent are written out in full', () => {
  for (const [value, expected] of [
    [1e-7, '0.0000001'],
    [1.234e-7, '0.0000001234'],
    [-3.5e-9, '-0.0000000035'],
    [5e-324, `0.${'0'.repeat(323)}5`],
    [1e21, '1000000000000000000000'],
    [1.5e22, '15000000000000000000000'],
    [-2.25e25, '-22500000000000000000000000'],
    [1.7976931348623157e308, `17976931348623157${'0'.repeat(292)}`],
  ]) {
    assert.equal(signedText(value), expected, String(value));
  }
});

test('ordinary numbers are String(n)', () => {
  for (const [value, expected] of [
    [0, '0'],
    [-0, '-0'],
    [7, '7'],
    [-12, '-12'],
    [0.5, '0.5'],
    [0.000001, '0.000001'],
    [123456.789, '123456.789'],
    [1e20, '100000000000000000000'],
    [2 ** 53, '9007199254740992'],
    [0.95, '0.95'],
  ]) {
    assert.equal(signedText(value), expected, String(value));
  }
});

test('figures parsed from a statement, as the page gets them', () => {
  // JSON.parse of the signed bytes, as job.js reads them: `1.0` is the number 1 in JavaScript,
  // and serde_json's f64 1.0 displays as `1` too.
  const s = JSON.parse('{"mean":1.0,"stderr":0.012345,"ci95":[0.25,0.5],"n":40,"eps":1e-7}');
  assert.equal(signedText(s.mean), '1');
  assert.equal(signedText(s.stderr), '0.012345');
  assert.equal(signedText(s.ci95[1]), '0.5');
  assert.equal(signedText(s.n), '40');
  assert.equal(signedText(s.eps), '0.0000001');
});

test('arrays and objects as compact JSON', () => {
  assert.equal(signedText([0.25, 0.5]), '[0.25,0.5]');
  assert.equal(signedText({ a: 1, b: 'x' }), '{"a":1,"b":"x"}');
  assert.equal(signedText([]), '[]');
  assert.equal(signedText({}), '{}');
});
