import test from 'ava';
import { closestMatch, editDistance } from '../../../src/config/index.js';

test('edit distance counts a swap of neighbours as one edit', (t) => {
  t.is(editDistance('agent', 'agnet'), 1);
  t.is(editDistance('port', 'prot'), 1);
  t.is(editDistance('', 'abc'), 3);
  t.is(editDistance('kitten', 'sitting'), 3);
});

test('closest match: case first, then small edits, else nothing', (t) => {
  const keys = ['mesh', 'agent', 'wireguard', 'connects', 'exposes', 'update', 'log'];
  t.is(closestMatch('agnet', keys), 'agent');
  t.is(closestMatch('WireGuard', keys), 'wireguard');
  t.is(closestMatch('expose', keys), 'exposes');
  t.is(closestMatch('wireguad', keys), 'wireguard');
  t.is(closestMatch('frobnicate', keys), undefined);
  t.is(closestMatch('lg', keys), 'log');
});
