// latchkey-console in a real browser (Debian's chromium, driven by
// playwright-core) against a real authority and sidecar: every task of the
// key management page, checked through the page and through the sidecar's
// verdicts. Screenshots of the main states go to $LATCHKEY_SCREENSHOT_DIR.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { Stack, eventually, launchBrowser } from './stack.mjs';

const KEY = /^lk[ps]_[0-9A-Za-z]{38}$/;
const shots = process.env.LATCHKEY_SCREENSHOT_DIR || '';
const stack = new Stack();
let browser;

async function screenshot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: stack.url });
  const page = await context.newPage();
  await page.goto(stack.url);
  return page;
}

async function signIn(page, token) {
  await page.getByLabel('Principal token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'API Keys', exact: true }).waitFor();
}

const clipboard = (page) => page.evaluate(() => navigator.clipboard.readText());
const row = (page, table, name) => page.locator(`#${table} tbody tr`, { hasText: name });
const notice = (page) => page.getByRole('status').filter({ hasText: 'sidecars' });

// Every text and form value on the page, to prove a value is gone from it.
const pageText = (page) => page.evaluate(() => document.documentElement.outerHTML +
    [...document.querySelectorAll('input')].map((i) => i.value).join('\n'));

before(async () => {
  await stack.up();
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  await stack.down();
});

test('a manager does every task of the key page in the browser', async (t) => {
  const page = await newPage();
  let project;
  let apiKey;
  let legacyKey;
  let secretKey;

  await t.test('signs in with a pasted token kept for the tab only', async () => {
    await screenshot(page, 'sign-in');
    await page.getByLabel('Principal token').fill('lk_not_a_token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('That token is not valid here.').waitFor();
    await signIn(page, stack.adminToken);
    await page.getByText('admin (ADMIN)').waitFor();
    assert.ok(!page.url().includes(stack.adminToken));
    const stored = await page.evaluate(() => ({ local: localStorage.length,
                                                cookies: document.cookie }));
    assert.deepEqual(stored, { local: 0, cookies: '' });
    await page.getByRole('link', { name: 'API Keys' }).waitFor();
    await page.getByRole('navigation', { name: 'Organization settings' }).waitFor();
  });

  await t.test('creates a project, born with its legacy API key', async () => {
    await page.getByRole('button', { name: 'New project' }).click();
    await page.getByLabel('Project name').fill('Web shop');
    await page.getByRole('button', { name: 'Create project' }).click();
    await row(page, 'api-keys-table', 'Legacy').waitFor();
    project = await page.getByLabel('Project', { exact: true }).inputValue();
    assert.match(project, /^prj_[0-9A-Za-z]{12}$/);
    const legacy = row(page, 'api-keys-table', 'Legacy');
    assert.equal(await legacy.getByRole('button', { name: 'Revoke' }).count(), 0);
    await legacy.getByRole('button', { name: 'Copy' }).click();
    await page.getByText('to the clipboard').waitFor();
    legacyKey = await clipboard(page);
    assert.match(legacyKey, KEY);
  });

  await t.test('generates an API key, copies it, and the sidecar says VALID', async () => {
    await page.getByRole('button', { name: 'Generate API Key' }).click();
    await page.locator('#generate-dialog').getByLabel('Name', { exact: true }).fill('ios app');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const shown = page.getByLabel('API key', { exact: true });
    await shown.waitFor();
    apiKey = await shown.inputValue();
    assert.match(apiKey, KEY);
    await page.locator('#generate-dialog').getByRole('button', { name: 'Copy' }).click();
    await page.getByText('Copied', { exact: true }).waitFor();
    assert.equal(await clipboard(page), apiKey);
    await screenshot(page, 'api-key-generated');
    await page.getByRole('button', { name: 'Done' }).click();
    await row(page, 'api-keys-table', 'ios app').waitFor();
    assert.ok(await eventually(async () => (await stack.verdict(apiKey)) === 'VALID'));

    // "Copy" beside the key fetches its value again.
    await page.evaluate(() => navigator.clipboard.writeText(''));
    await row(page, 'api-keys-table', 'ios app').getByRole('button', { name: 'Copy' }).click();
    await page.getByText('Copied the API key "ios app"').waitFor();
    assert.equal(await clipboard(page), apiKey);
  });

  await t.test('revokes it after confirming, shows the receipt, and the sidecar says REVOKED',
               async () => {
    await row(page, 'api-keys-table', 'ios app').getByRole('button', { name: 'Revoke' }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke API key' });
    await dialog.getByText('Revoke "ios app"').waitFor();
    await dialog.getByRole('button', { name: 'Revoke' }).click();
    await notice(page).filter({ hasText: /Revoked "ios app"; applied on 1\/1 sidecars in [0-9.]+ ms/ })
        .waitFor();
    assert.equal(await stack.verdict(apiKey), 'REVOKED');
    const revoked = row(page, 'api-keys-table', 'ios app');
    await revoked.getByText('Revoked', { exact: true }).waitFor();
    await revoked.getByText('revoked by admin').waitFor();
    assert.equal(await revoked.getByRole('button', { name: 'Revoke' }).count(), 0);
    assert.equal(await revoked.getByRole('button', { name: 'Copy' }).count(), 1);
    await screenshot(page, 'revoked-with-receipt');
  });

  await t.test('rotates the legacy key with a grace period', async () => {
    await row(page, 'api-keys-table', 'Legacy').getByRole('button', { name: 'Rotate' }).click();
    const dialog = page.getByRole('dialog', { name: 'Rotate API key' });
    await dialog.getByLabel('The old value keeps working').selectOption({ label: 'For 1 hour' });
    await dialog.getByRole('button', { name: 'Rotate' }).click();
    const shown = dialog.getByLabel('New API key');
    await shown.waitFor();
    const rotated = await shown.inputValue();
    assert.match(rotated, KEY);
    assert.notEqual(rotated, legacyKey);
    await dialog.getByText('The old value keeps working until').waitFor();
    await notice(page).filter({ hasText: /Rotated "Legacy API key"; applied on 1\/1 sidecars/ })
        .waitFor();
    await dialog.getByRole('button', { name: 'Done' }).click();
    assert.equal(await stack.verdict(rotated), 'VALID');
    assert.equal(await stack.verdict(legacyKey), 'VALID');  // within its hour of grace
    legacyKey = rotated;
    await row(page, 'api-keys-table', 'Legacy').getByText('rotated by admin').waitFor();
  });

  await t.test('shows a secret key once, and closing the dialog removes it for good', async () => {
    await page.getByRole('button', { name: 'Generate Secret Key' }).click();
    const dialog = page.locator('#generate-dialog');
    await dialog.getByLabel('Name', { exact: true }).fill('nightly export');
    await dialog.getByRole('button', { name: 'Generate', exact: true }).click();
    const shown = dialog.getByLabel('Secret key', { exact: true });
    await shown.waitFor();
    const secret = await shown.inputValue();
    assert.match(secret, /^lks_/);
    await dialog.getByText('This is the only time you will see this secret key').waitFor();
    await screenshot(page, 'secret-key-shown-once');
    await dialog.getByRole('button', { name: 'Done' }).click();
    await row(page, 'secret-keys-table', 'nightly export').waitFor();
    assert.ok(!(await pageText(page)).includes(secret));
    assert.ok(await eventually(async () => (await stack.verdict(secret)) === 'VALID'));
    secretKey = secret;
  });

  await t.test('deletes a secret key only after DELETE is typed exactly', async () => {
    const secret = secretKey;
    await row(page, 'secret-keys-table', 'nightly export')
        .getByRole('button', { name: 'Delete' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete secret key' });
    const confirm = dialog.getByLabel('Type DELETE to confirm');
    const remove = dialog.getByRole('button', { name: 'Delete' });
    assert.ok(await remove.isDisabled());
    for (const wrong of ['delete', 'DELET', 'DELETE ', ' DELETE']) {
      await confirm.fill(wrong);
      assert.ok(await remove.isDisabled(), `enabled by "${wrong}"`);
    }
    await confirm.fill('DELETE');
    assert.ok(await remove.isEnabled());
    await screenshot(page, 'delete-secret-key');
    await remove.click();
    await page.getByText('Deleted the secret key "nightly export"').waitFor();
    await row(page, 'secret-keys-table', 'nightly export').waitFor({ state: 'detached' });
    assert.ok(await eventually(async () => (await stack.verdict(secret)) === 'UNKNOWN'));
  });

  await t.test('disables and re-enables API access for the project', async () => {
    await page.getByRole('button', { name: 'Disable API access' }).click();
    const dialog = page.getByRole('dialog', { name: 'Disable API access' });
    await dialog.getByRole('button', { name: 'Disable API access' }).click();
    await page.getByText('API access disabled', { exact: true }).waitFor();
    await notice(page).filter({ hasText: 'applied on 1/1' }).waitFor();
    assert.equal(await stack.verdict(legacyKey), 'PROJECT_DISABLED');
    await page.getByRole('button', { name: 'Enable API access' }).click();
    await page.getByText('API access enabled', { exact: true }).waitFor();
    assert.ok(await eventually(async () => (await stack.verdict(legacyKey)) === 'VALID'));
  });

  await t.test('reads the project audit log in order', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    await page.locator('#audit-table tbody tr', { hasText: 'project.api_access_enabled' }).waitFor();
    const actions = await page.locator('#audit-table tbody tr td:nth-child(4)').allTextContents();
    // The revoked key's rejections reach the log with the authority's next
    // usage flush (every 10 s), wherever that falls on a slow machine: not
    // one of this page's own actions, so left out of the order checked.
    const own = actions.filter((action) => action !== 'key.rejected_after_revocation');
    // Each "Copy" of an API key is an audited read (key.value_read).
    assert.deepEqual(own, ['project.created', 'key.value_read', 'key.created',
                               'key.value_read', 'key.revoked', 'key.rotated', 'key.created',
                               'key.deleted', 'project.api_access_disabled',
                               'project.api_access_enabled']);
    assert.ok(!(await pageText(page)).includes(apiKey));
    await screenshot(page, 'audit-log');
    await page.getByRole('link', { name: 'API Keys' }).click();
    await screenshot(page, 'api-keys');
  });

  await t.test('finds a leaked key from its value and revokes it from there', async () => {
    // A key leaks: generate it here, then look it up by value alone.
    await page.getByRole('button', { name: 'Generate API Key' }).click();
    await page.locator('#generate-dialog').getByLabel('Name', { exact: true }).fill('leaked');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const leaked = await page.getByLabel('API key', { exact: true }).inputValue();
    await page.getByRole('button', { name: 'Done' }).click();
    assert.ok(await eventually(async () => (await stack.verdict(leaked)) === 'VALID'));

    await page.getByRole('link', { name: 'Find a key' }).click();
    await page.getByRole('heading', { name: 'Find a key' }).waitFor();
    const find = async (value) => {
      await page.getByLabel('Key value').fill(value);
      await page.getByRole('button', { name: 'Find', exact: true }).click();
      assert.equal(await page.getByLabel('Key value').inputValue(), '');  // not kept
    };
    await find(leaked);
    const result = page.getByRole('region', { name: 'Lookup result' });
    await result.getByText('This value belongs to API key "leaked"').waitFor();
    await result.getByText("the key's current value").waitFor();
    await screenshot(page, 'find-a-key');
    await result.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog', { name: 'Revoke API key' })
        .getByRole('button', { name: 'Revoke' }).click();
    await notice(page).filter({ hasText: /Revoked "leaked"; applied on 1\/1 sidecars/ }).waitFor();
    await result.getByText('Revoked', { exact: true }).waitFor();
    assert.equal(await stack.verdict(leaked), 'REVOKED');

    // The sidecar keeps receiving it: the page names who still sends it.
    assert.ok(await eventually(async () => {
      await find(leaked);
      return (await result.textContent()).includes('still sent to pod-1');
    }));
    assert.ok(!(await pageText(page)).includes(leaked));

    await find(legacyKey);
    await result.getByText('The legacy key cannot be revoked: rotate it.').waitFor();
    await find(secretKey);  // deleted earlier
    await result.getByText('No key has this value').waitFor();
    await find('lkp_not_a_key');
    await result.getByText('That is not a latchkey key').waitFor();
    await page.getByRole('link', { name: 'API Keys' }).click();
  });

  await t.test('sets the leak policy to revoke, and a key GitHub reports stops and says so',
               async () => {
    await page.getByLabel('When GitHub finds a key in public').selectOption('LEAK_POLICY_REVOKE');
    await page.getByText('now stops at once').waitFor();
    await page.getByRole('button', { name: 'Generate API Key' }).click();
    await page.locator('#generate-dialog').getByLabel('Name', { exact: true }).fill('in public');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const found = await page.getByLabel('API key', { exact: true }).inputValue();
    await page.getByRole('button', { name: 'Done' }).click();
    assert.ok(await eventually(async () => (await stack.verdict(found)) === 'VALID'));

    const url = 'https://github.com/octo/shop/blob/main/app.js';
    const answer = await stack.reportLeak([found, 'lkp_not_ours'], url);
    assert.deepEqual(answer.map((a) => a.label), ['true_positive', 'false_positive']);
    assert.ok(await eventually(async () => (await stack.verdict(found)) === 'REVOKED'));
    await page.reload();
    const leakedRow = row(page, 'api-keys-table', 'in public');
    await leakedRow.getByText('Leaked', { exact: true }).waitFor();
    await leakedRow.getByText(url, { exact: false }).waitFor();
    await leakedRow.getByText('Revoked', { exact: true }).waitFor();
    assert.equal(await page.getByLabel('When GitHub finds a key in public').inputValue(),
                 'LEAK_POLICY_REVOKE');
    await screenshot(page, 'leaked-key');
    assert.ok(!(await pageText(page)).includes(found));
  });

  await t.test('signs out and forgets the token', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('Principal token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  });
  await page.context().close();
});

test('a MEMBER sees keys read-only: no action buttons, never a value', async () => {
  const token = await stack.createPrincipal('mo', 'MEMBER');
  const page = await newPage();
  await signIn(page, token);
  await page.getByText('mo (MEMBER)').waitFor();
  await page.getByText('You have read-only access').waitFor();
  await row(page, 'api-keys-table', 'ios app').waitFor();
  for (const name of ['New project', 'Generate API Key', 'Generate Secret Key', 'Copy', 'Rotate',
                      'Revoke', 'Delete', 'Disable API access', 'Enable API access']) {
    assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, name);
  }
  assert.equal(await page.getByRole('link', { name: 'Find a key' }).count(), 0);
  // The page offers nothing, and the authority refuses anyway.
  const refused = await page.evaluate(async (keyId) => {
    const r = await fetch('/api/v1/GetApiKeyValue', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json',
                 'Authorization': `Bearer ${sessionStorage.getItem('latchkey.token')}` },
      body: JSON.stringify({ keyId }) });
    return { status: r.status, body: await r.json() };
  }, await row(page, 'api-keys-table', 'ios app').getAttribute('data-key-id'));
  assert.equal(refused.status, 403);
  assert.equal(refused.body.code, 'PERMISSION_DENIED');
  await screenshot(page, 'member-read-only');
  await page.context().close();
});

test('the console answers with the security headers of a web surface', async () => {
  const page = await fetch(stack.url);
  const expected = {
    'content-security-policy': /default-src 'none'; script-src 'self'.*frame-ancestors 'none'/,
    'x-content-type-options': /^nosniff$/,
    'referrer-policy': /^no-referrer$/,
    'x-frame-options': /^DENY$/,
  };
  for (const [name, value] of Object.entries(expected)) {
    assert.match(page.headers.get(name) || '', value, name);
  }
  const html = await page.text();
  assert.ok(!/<script>|<script [^>]*>[^<]/.test(html), 'no inline script');
  assert.ok(!/ on[a-z]+=/.test(html), 'no inline handlers');

  const call = (body, headers = {}) => fetch(new URL('/api/v1/ListProjects', stack.url), {
    method: 'POST', body,
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${stack.adminToken}`,
               ...headers } });
  const ok = await call('{}');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('cache-control'), 'no-store');
  assert.match(ok.headers.get('content-security-policy') || '', /frame-ancestors 'none'/);

  const anonymous = await call('{}', { Authorization: '' });
  assert.equal(anonymous.status, 401);
  assert.equal((await anonymous.json()).code, 'UNAUTHENTICATED');
  const form = await call('{}', { 'Content-Type': 'application/x-www-form-urlencoded' });
  assert.equal(form.status, 415);
  const huge = await call(JSON.stringify({ pageToken: 'x'.repeat(200 * 1024) }));
  assert.equal(huge.status, 413);
  assert.equal(huge.headers.get('cache-control'), 'no-store');

  // Errors carry the gRPC status and the authority's message, never a value.
  const bad = await fetch(new URL('/api/v1/RevokeApiKey', stack.url), {
    method: 'POST', headers: { 'Content-Type': 'application/json',
                               Authorization: `Bearer ${stack.adminToken}` },
    body: JSON.stringify({ keyId: 'lkp_not_an_id', unknownField: 'lkp_secretish' }) });
  assert.equal(bad.status, 400);
  const error = await bad.json();
  assert.deepEqual(Object.keys(error).sort(), ['code', 'message']);
  assert.equal(error.code, 'INVALID_ARGUMENT');
  assert.ok(!error.message.includes('lkp_secretish'));

  // Neither the tokens nor any key value reached the console's log.
  const log = stack.log('latchkey-console');
  assert.ok(!log.includes(stack.adminToken));
  assert.ok(!/lk[ps]_[0-9A-Za-z]{38}/.test(log));
});
