import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffHunks, lineDiff } from '../src/diff.ts';

const ops = (before: string, after: string) =>
  lineDiff(before, after).map((l) => `${l.op === 'same' ? ' ' : l.op === 'added' ? '+' : '-'}${l.text}`);

test('a line diff keeps common lines and shows removed before added', () => {
  assert.deepEqual(ops('a\nb\nc', 'a\nB\nc'), [' a', '-b', '+B', ' c']);
  assert.deepEqual(ops('a\nb', 'a\nb\nc'), [' a', ' b', '+c']);
  assert.deepEqual(ops('x\na\nb', 'a\nb'), ['-x', ' a', ' b']);
  assert.deepEqual(ops('same', 'same'), [' same']);
  assert.deepEqual(ops('a\nb\nc\nd', 'a\nc\nb\nd'), [' a', '-b', ' c', '+b', ' d']);
});

test('line numbers follow each side', () => {
  const d = lineDiff('a\nb\nc', 'a\nx\ny\nc');
  assert.deepEqual(
    d.map((l) => [l.op, l.oldNo, l.newNo]),
    [
      ['same', 1, 1],
      ['removed', 2, null],
      ['added', null, 2],
      ['added', null, 3],
      ['same', 3, 4],
    ],
  );
});

test('hunks keep context around changes and elide the rest', () => {
  const before = Array.from({ length: 20 }, (_, i) => `l${i}`).join('\n');
  const after = before.replace('l10', 'L10');
  const h = diffHunks(lineDiff(before, after), 2);
  assert.deepEqual(
    h.map((l) => (l === null ? '…' : `${l.op[0]}${l.text}`)),
    ['sl8', 'sl9', 'rl10', 'aL10', 'sl11', 'sl12'],
  );
  const two = diffHunks(lineDiff(before, after.replace('l1\n', 'L1\n')), 1);
  assert.deepEqual(
    two.map((l) => (l === null ? '…' : `${l.op[0]}${l.text}`)),
    ['sl0', 'rl1', 'aL1', 'sl2', '…', 'sl9', 'rl10', 'aL10', 'sl11'],
  );
});
