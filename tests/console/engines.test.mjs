// Every npm package the tests install must run on Debian 12's own Node.js
// (18.20.4), since that is what scripts/test installs on a fresh machine; a
// machine that happens to carry a newer Node would otherwise hide a package
// that refuses 18 (playwright-core 1.64 did, at run time). Read from the
// lockfile's `engines` fields, so a new pin is checked before anyone runs it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const DEBIAN_NODE = '18.20.4';

const parse = (v) => v.replace(/^v/, '').split('.').map((p) => (/^\d+$/.test(p) ? Number(p) : NaN));

function compare(a, b) {
  for (let i = 0; i < 3; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

// One comparator of a semver range: >=1.2.3, <2, ^18.17.0, ~1.2, 20.x, *, 1.2.3.
function satisfiesOne(version, comparator) {
  const m = comparator.match(/^(>=|<=|>|<|=|\^|~)?v?([0-9x*]+(?:\.[0-9x*]+)*)?$/i);
  if (!m) throw new Error(`cannot read engines comparator "${comparator}"`);
  const [, op = '', spec = '*'] = m;
  const parts = spec.split('.');
  const wild = parts.findIndex((p) => p === 'x' || p === 'X' || p === '*');
  const fixed = wild < 0 ? parts.length : wild;
  const base = parse(parts.slice(0, fixed).join('.') || '0');
  const cmp = compare(version, base);
  const samePrefix = (n) => base.slice(0, n).every((x, i) => version[i] === x);
  switch (op) {
    case '>=': return cmp >= 0;
    case '>': return cmp > 0;
    case '<=': return cmp <= 0;
    case '<': return cmp < 0;
    case '^': return cmp >= 0 && samePrefix(Math.max(1, base.findIndex((x) => x !== 0) + 1));
    case '~': return cmp >= 0 && samePrefix(Math.min(fixed, 2) || 1);
    default: return fixed === 0 || (fixed < 3 ? samePrefix(fixed) : cmp === 0);
  }
}

// A whole range: comparator sets joined by ||, each one all of its comparators.
export function satisfies(version, range) {
  const v = parse(version);
  return range.split('||').some((set) => set.trim().replace(/(>=|<=|>|<|=)\s+/g, '$1')
      .split(/\s+/).filter(Boolean).every((c) => satisfiesOne(v, c)));
}

test('the range reader agrees with semver on the forms packages use', () => {
  const cases = [
    ['18.20.4', '>=18', true], ['18.20.4', '>=20', false], ['18.20.4', '>= 18.0.0', true],
    ['18.20.4', '^20.19.0 || ^22.12.0 || >= 23.0.0', false], ['22.13.0', '^22.12.0', true],
    ['18.20.4', '^18.12.0 || >=20', true], ['18.20.4', '~18.20.0', true],
    ['18.21.0', '~18.20.0', false], ['18.20.4', '18.x', true], ['18.20.4', '*', true],
    ['18.20.4', '>=14 <18', false], ['18.20.4', '>=12.0.0 <19', true],
  ];
  for (const [version, range, expected] of cases) {
    assert.equal(satisfies(version, range), expected, `${version} in "${range}"`);
  }
});

test(`every npm package the tests install runs on Debian 12's Node ${DEBIAN_NODE}`, () => {
  const lock = JSON.parse(readFileSync(new URL('./package-lock.json', import.meta.url), 'utf8'));
  const refused = Object.entries(lock.packages)
      .filter(([, pkg]) => typeof pkg.engines?.node === 'string')
      .filter(([, pkg]) => !satisfies(DEBIAN_NODE, pkg.engines.node))
      .map(([name, pkg]) => `${name}@${pkg.version} needs node ${pkg.engines.node}`);
  assert.deepEqual(refused, []);
});
