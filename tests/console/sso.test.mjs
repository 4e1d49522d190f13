// "Sign in with SSO" in a real browser (Debian's chromium, driven by
// playwright-core) through a real OpenID Connect provider (npm's
// oidc-provider, tests/console/provider.mjs), a real authority that verifies
// its ID tokens, and the console. Roles come from bindings: the group
// `platform` is ADMIN everywhere; bob is MANAGER of project A only.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { CLIENT_ID, CLIENT_SECRET, IdentityProvider } from './provider.mjs';
import { Stack, eventually, freePort, launchBrowser } from './stack.mjs';

const stack = new Stack();
let idp;
let browser;
let projectA;
let projectB;

before(async () => {
  const consolePort = await freePort();
  idp = new IdentityProvider(await freePort(), `http://127.0.0.1:${consolePort}/oidc/callback`);
  await idp.start();
  const secretFile = join(stack.dir, 'client.secret');
  writeFileSync(secretFile, CLIENT_SECRET, { mode: 0o600 });
  await stack.up({
    consolePort,
    authorityArgs: ['--oidc-issuer-url', idp.issuer, '--oidc-client-id', CLIENT_ID],
    consoleArgs: ['--oidc-issuer-url', idp.issuer, '--oidc-client-id', CLIENT_ID,
                  '--oidc-client-secret-file', secretFile],
  });
  const bind = async (...args) => {
    const { code, err } = await stack.ctl('role', 'bind', ...args);
    assert.equal(code, 0, err);
  };
  await bind('--group', 'platform', '--role', 'ADMIN');
  projectB = JSON.parse((await stack.ctl('-o', 'json', 'project', 'create', 'B')).out)
      .project.projectId;
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  await stack.down();
  if (idp) await idp.stop();
});

// Signs `login` in through the provider's own login and consent pages.
async function signIn(login) {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  await page.goto(stack.url);
  await page.getByRole('link', { name: 'Sign in with SSO' }).click();
  await page.waitForURL((url) => url.href.startsWith(idp.issuer));
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password');
  await page.locator('button[type="submit"]').click();
  // Consent to the scopes (the first time for this browser context).
  await page.locator('button[type="submit"]').click();
  await page.waitForURL((url) => url.href.startsWith(stack.url));
  await page.getByRole('heading', { name: 'API Keys', exact: true }).waitFor();
  return page;
}

const row = (page, table, name) => page.locator(`#${table} tbody tr`, { hasText: name });

test('alice (group platform, ADMIN) signs in with SSO and creates project A', async () => {
  const page = await signIn('alice');
  await page.getByText('alice@example.com (ADMIN)').waitFor();
  // The session is an HttpOnly cookie: nothing for scripts to read.
  const stored = await page.evaluate(() => ({ cookies: document.cookie,
                                              local: localStorage.length,
                                              session: sessionStorage.length }));
  assert.deepEqual(stored, { cookies: '', local: 0, session: 0 });
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'latchkey_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict');

  await page.getByRole('button', { name: 'New project' }).click();
  await page.getByLabel('Project name').fill('A');
  await page.getByRole('button', { name: 'Create project' }).click();
  const projects = JSON.parse((await stack.ctl('-o', 'json', 'project', 'list')).out).projects;
  projectA = projects.find((p) => p.name === 'A').projectId;
  assert.ok(await eventually(async () =>
    (await page.getByLabel('Project', { exact: true }).inputValue()) === projectA));
  await row(page, 'api-keys-table', 'Legacy').waitFor();
  // The audit log names her.
  const audit = JSON.parse((await stack.ctl('-o', 'json', 'audit', projectA)).out);
  assert.equal(audit.events[0].action, 'project.created');
  assert.equal(audit.events[0].actor, 'alice@example.com');
  assert.match(audit.events[0].actorId, /^oidc:http:\/\/127\.0\.0\.1:\d+#alice$/);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in with SSO' }).waitFor();
  await page.context().close();
});

test('bob, MANAGER of A only, sees A alone, generates and revokes there, and is refused on B',
     async () => {
  assert.ok(projectA, 'the previous test made project A');
  const bound = await stack.ctl('role', 'bind', '--user', 'bob@example.com', '--project',
                                projectA, '--role', 'MANAGER');
  assert.equal(bound.code, 0, bound.err);
  const page = await signIn('bob');
  await page.getByText('bob@example.com (MANAGER)').waitFor();
  const options = await page.getByLabel('Project', { exact: true }).locator('option')
      .allTextContents();
  assert.deepEqual(options, [`A (${projectA})`]);
  // Not an organization-wide role: no new projects.
  assert.equal(await page.getByRole('button', { name: 'New project' }).isVisible(), false);

  await page.getByRole('button', { name: 'Generate API Key' }).click();
  await page.locator('#generate-dialog').getByLabel('Name', { exact: true }).fill('bob key');
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await page.getByLabel('API key', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'Done' }).click();
  await row(page, 'api-keys-table', 'bob key').getByRole('button', { name: 'Revoke' }).click();
  const dialog = page.getByRole('dialog', { name: 'Revoke API key' });
  await dialog.getByRole('button', { name: 'Revoke' }).click();
  await row(page, 'api-keys-table', 'bob key').getByText('revoked by bob@example.com').waitFor();

  // The page bypassed: the authority refuses B, as if it did not exist.
  const direct = await page.evaluate(async (b) => {
    const response = await fetch('/api/v1/GenerateApiKey', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ projectId: b, name: 'sneaky' }),
    });
    return { status: response.status, body: await response.json() };
  }, projectB);
  assert.equal(direct.status, 404);
  assert.equal(direct.body.code, 'NOT_FOUND');
  const keysOfB = JSON.parse((await stack.ctl('-o', 'json', 'key', 'list', projectB)).out);
  assert.ok(!(keysOfB.keys || []).some((k) => k.name === 'sneaky'));
  await page.context().close();
  // No ID token (a JWT: base64url of '{"...', "eyJ") in any log line.
  for (const name of ['latchkey-authority', 'latchkey-console']) {
    assert.ok(!stack.log(name).includes('eyJ'), `${name}'s log holds a JWT`);
  }
});

test('a session past its ID token\'s expiry, with no refresh token, asks to sign in again',
     async () => {
  idp.shortLived = true;
  try {
    const page = await signIn('bob');
    // Within 60 s of the token's end (65 s) the console would refresh; it
    // has no refresh token, so the session ends at the next call.
    await new Promise((resolve) => setTimeout(resolve, 6000));
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByText('Your session ended: sign in again.').waitFor();
    await page.getByRole('link', { name: 'Sign in with SSO' }).waitFor();
    await page.context().close();
  } finally {
    idp.shortLived = false;
  }
});
