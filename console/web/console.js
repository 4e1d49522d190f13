// latchkey console: the self-service key management page.
//
// Everything here goes through the console's JSON API (POST /api/v1/<KeyAdmin
// method>), which passes the signed-in person's credential on to the
// authority; the authority decides what each role may do. A person signs in
// with SSO (the console keeps their ID token server-side, in a session named
// by an HttpOnly cookie this script never sees) or by pasting a token, which
// lives in this tab's sessionStorage only: never in a URL, a cookie or
// localStorage. Key values are put on the page only while a dialog shows
// them, and removed with it.
'use strict';

const TOKEN_KEY = 'latchkey.token';
const $ = (id) => document.getElementById(id);

const state = {
  me: null,         // the signed-in principal or person (WhoAmI)
  sso: false,       // signed in with SSO: the session cookie is the credential
  projects: [],     // every project, in the authority's order
  projectId: '',    // the selected project
  view: 'keys',     // 'keys' or 'audit'
};

// ---------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, request = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`/api/v1/${method}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(request),
    cache: 'no-store',
    // The SSO session's cookie goes along (same origin only); a pasted token
    // is sent instead when there is one.
    credentials: token ? 'omit' : 'same-origin',
  });
  let body = {};
  try {
    body = await response.json();
  } catch (e) {
    body = {};
  }
  if (!response.ok) {
    const error = new ApiError(response.status, body.code || 'UNKNOWN',
                               body.message || `HTTP ${response.status}`);
    // A token that stopped working (its principal was deleted) ends the session.
    if (response.status === 401 && state.me) signOut('Your session ended: sign in again.');
    throw error;
  }
  return body;
}

// Every page of a List method, merged.
async function listAll(method, request, field) {
  const items = [];
  let pageToken = '';
  do {
    const page = await api(method, { ...request, pageSize: 1000, pageToken });
    items.push(...(page[field] || []));
    pageToken = page.nextPageToken || '';
  } while (pageToken);
  return items;
}

function describe(error) {
  return error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
}

// ---------------------------------------------------------------------------
// Small DOM helpers: text only, never HTML built from data.

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function formatTime(value) {
  if (!value) return '—';
  const date = new Date(value);
  if (Number.isNaN(date.getTime()) || date.getTime() <= 0) return '—';
  return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function plural(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

const RANK = { ROLE_MEMBER: 1, ROLE_MANAGER: 2, ROLE_ADMIN: 3 };

// The caller's role in a project: the higher of its organization-wide role
// and the bindings it holds there (WhoAmI lists them). The authority decides
// the same way; the page only hides what would be refused.
function roleIn(projectId) {
  if (!state.me) return '';
  let role = state.me.role || '';
  for (const b of state.me.bindings || []) {
    if (b.projectId === projectId && (RANK[b.role] || 0) > (RANK[role] || 0)) role = b.role;
  }
  return role;
}

function canWrite(projectId = state.projectId) {
  const role = roleIn(projectId);
  return role === 'ROLE_ADMIN' || role === 'ROLE_MANAGER';
}

// Creating projects needs the role everywhere, not in one project.
function canWriteEverywhere() {
  return state.me && (state.me.role === 'ROLE_ADMIN' || state.me.role === 'ROLE_MANAGER');
}

// Shows the actions the role in the selected project allows, and no others.
function applyRole() {
  const role = (roleIn(state.projectId) || 'no role').replace('ROLE_', '');
  $('whoami').textContent = `${state.me.name} (${role})`;
  $('read-only-note').hidden = canWrite();
  for (const node of document.querySelectorAll('[data-write]')) {
    if (node.id === 'toggle-access') continue;
    node.hidden = node.id === 'new-project' ? !canWriteEverywhere() : !canWrite();
  }
}

function showNotice(text, isError = false) {
  const notice = $('notice');
  notice.textContent = text;
  notice.classList.toggle('error', isError);
  notice.hidden = false;
}

function clearNotice() {
  $('notice').hidden = true;
  $('notice').textContent = '';
}

// ---------------------------------------------------------------------------
// Signing in and out

async function signIn(event) {
  event.preventDefault();
  const input = $('token-input');
  const error = $('sign-in-error');
  error.hidden = true;
  const token = input.value.trim();
  if (!token) {
    error.textContent = 'Paste your principal token.';
    error.hidden = false;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  input.value = '';
  try {
    await start();
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    error.textContent = e instanceof ApiError && e.status === 401
        ? 'That token is not valid here.'
        : `Cannot sign in: ${describe(e)}`;
    error.hidden = false;
  }
}

function signOut(message = '') {
  if (state.sso) {
    // Forgets the session at the console; the cookie goes with it.
    fetch('/oidc/sign-out', { method: 'POST', credentials: 'same-origin', cache: 'no-store' })
        .catch(() => {});
  }
  state.sso = false;
  sessionStorage.removeItem(TOKEN_KEY);
  state.me = null;
  state.projects = [];
  state.projectId = '';
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  $('app-view').hidden = true;
  $('whoami').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in-view').hidden = false;
  const error = $('sign-in-error');
  error.textContent = message;
  error.hidden = !message;
}

// Who is signed in decides what the page offers; the authority still checks.
async function start() {
  const me = await api('WhoAmI');
  if (me.role === 'ROLE_SIDECAR') {
    throw new Error('a SIDECAR token cannot administer keys; use a person\'s token');
  }
  state.me = me;
  state.sso = me.credential === 'oidc' && !sessionStorage.getItem(TOKEN_KEY);
  applyRole();
  $('whoami').hidden = false;
  $('sign-out').hidden = false;
  $('sign-in-view').hidden = true;
  $('app-view').hidden = false;
  showView();
  await loadProjects();
}

// ---------------------------------------------------------------------------
// Projects

async function loadProjects(selectId = state.projectId) {
  state.projects = await listAll('ListProjects', {}, 'projects');
  const select = $('project-select');
  select.replaceChildren(...state.projects.map(
      (p) => el('option', { value: p.projectId, text: `${p.name} (${p.projectId})` })));
  const known = state.projects.some((p) => p.projectId === selectId);
  state.projectId = known ? selectId : (state.projects[0] ? state.projects[0].projectId : '');
  select.value = state.projectId;
  select.disabled = state.projects.length === 0;
  $('empty-note').hidden = state.projects.length > 0;
  $('empty-note').textContent = canWriteEverywhere()
      ? 'No projects yet. Create one with "New project".'
      : 'No projects yet.';
  applyRole();
  await refresh();
}

function currentProject() {
  return state.projects.find((p) => p.projectId === state.projectId) || null;
}

function renderProjectStatus() {
  const project = currentProject();
  const badge = $('api-access-state');
  const toggle = $('toggle-access');
  $('leak-policy').disabled = !project;
  if (!project) {
    badge.hidden = true;
    toggle.hidden = true;
    return;
  }
  const enabled = project.apiAccessEnabled === true;
  badge.hidden = false;
  badge.textContent = enabled ? 'API access enabled' : 'API access disabled';
  badge.className = enabled ? 'badge' : 'badge off';
  toggle.hidden = !canWrite();
  toggle.textContent = enabled ? 'Disable API access' : 'Enable API access';
  $('leak-policy').value = project.leakPolicy === 'LEAK_POLICY_REVOKE' ? 'LEAK_POLICY_REVOKE'
                                                                        : 'LEAK_POLICY_NOTIFY';
}

async function refresh() {
  renderProjectStatus();
  if (state.view === 'find') return;
  const keysBody = document.querySelector('#api-keys-table tbody');
  const secretsBody = document.querySelector('#secret-keys-table tbody');
  const auditBody = document.querySelector('#audit-table tbody');
  if (!state.projectId) {
    keysBody.replaceChildren();
    secretsBody.replaceChildren();
    auditBody.replaceChildren();
    return;
  }
  if (state.view === 'audit') {
    const events = await listAll('ListAuditEvents', { projectId: state.projectId }, 'events');
    auditBody.replaceChildren(...events.map(auditRow));
    if (events.length === 0) auditBody.append(emptyRow(6, 'Nothing has happened yet.'));
    return;
  }
  const keys = await listAll('ListKeys', { projectId: state.projectId }, 'keys');
  const apiKeys = keys.filter((k) => k.kind === 'API_KEY');
  const secretKeys = keys.filter((k) => k.kind === 'SECRET_KEY');
  keysBody.replaceChildren(...apiKeys.map(apiKeyRow));
  if (apiKeys.length === 0) keysBody.append(emptyRow(9, 'No API keys.'));
  secretsBody.replaceChildren(...secretKeys.map(secretKeyRow));
  if (secretKeys.length === 0) secretsBody.append(emptyRow(8, 'No secret keys.'));
}

function emptyRow(columns, text) {
  return el('tr', {}, el('td', { class: 'empty', colspan: String(columns), text }));
}

// ---------------------------------------------------------------------------
// Key rows

function lastAction(key) {
  const action = key.lastAction;
  if (!action || !action.action) return el('span', { text: '—' });
  return el('span', {},
            el('span', { text: `${action.action} by ${action.actor || '?'}` }),
            el('span', { class: 'sub', text: formatTime(action.time) }));
}

function nameCell(key) {
  const cell = el('td', {}, el('span', { text: key.name }));
  if (key.legacy) cell.append(el('span', { class: 'badge legacy', text: 'Legacy' }));
  if (key.leakedTime) {
    // Where GitHub saw it: shown as text, never followed as a link.
    cell.append(el('span', { class: 'badge leaked', text: 'Leaked' }),
                el('span', { class: 'sub', text: `found ${formatTime(key.leakedTime)} at ` +
                                                 `${key.leakUrl || 'an unnamed place'}` }));
  }
  return cell;
}

function lastUsed(key) {
  const rejected = Number(key.rejectedCount || 0);
  const rejectedNote = rejected > 0 ? el('span', { class: 'sub', text: `${rejected} rejected` })
                                    : null;
  if (!key.lastUsedTime) return el('span', {}, el('span', { text: 'Never' }), rejectedNote);
  return el('span', {}, el('span', { text: formatTime(key.lastUsedTime) }),
            el('span', { class: 'sub', text: plural(Number(key.useCount || 0), 'call') }),
            rejectedNote);
}

function apiKeyRow(key) {
  const revoked = key.state === 'KEY_STATE_REVOKED';
  const actions = el('td', { class: 'actions-cell' });
  if (canWrite()) {
    actions.append(el('button', { type: 'button', class: 'link', text: 'Copy',
                                  onclick: () => copyApiKey(key) }));
    if (!revoked) {
      actions.append(el('button', { type: 'button', class: 'link', text: 'Rotate',
                                    onclick: () => openRotate(key) }));
    }
    if (!revoked && !key.legacy) {
      actions.append(el('button', { type: 'button', class: 'link danger-text', text: 'Revoke',
                                    onclick: () => openRevoke(key) }));
    }
  }
  return keyRow(key, actions, true);
}

// One row of either table: API keys show a state column, secret keys (never
// revoked, only deleted) do not.
function keyRow(key, actions, withState) {
  const revoked = key.state === 'KEY_STATE_REVOKED';
  const cells = [nameCell(key), el('td', {}, el('code', { text: key.hint || '' }))];
  if (withState) {
    cells.push(el('td', {}, el('span', { class: revoked ? 'badge revoked' : 'badge',
                                         text: revoked ? 'Revoked' : 'Active' })));
  }
  cells.push(el('td', { text: key.createdBy || '' }),
             el('td', { text: formatTime(key.createTime) }),
             el('td', {}, lastAction(key)),
             el('td', {}, lastUsed(key)),
             el('td', { text: key.expireTime ? formatTime(key.expireTime) : 'Never' }),
             actions);
  return el('tr', { class: revoked ? 'revoked' : '', 'data-key-id': key.keyId }, ...cells);
}

function secretKeyRow(key) {
  const actions = el('td', { class: 'actions-cell' });
  if (canWrite()) {
    actions.append(el('button', { type: 'button', class: 'link danger-text', text: 'Delete',
                                  onclick: () => openDelete(key) }));
  }
  return keyRow(key, actions, false);
}

function auditRow(event) {
  return el('tr', {},
            el('td', { text: event.revision || '' }),
            el('td', { text: formatTime(event.time) }),
            el('td', { text: event.actor || '' }),
            el('td', {}, el('code', { text: event.action || '' })),
            el('td', {}, el('code', { text: event.keyId || '' })),
            el('td', { text: event.detail || '' }));
}

// ---------------------------------------------------------------------------
// Dialogs

function dialogError(dialog, error) {
  const node = dialog.querySelector('.error');
  node.textContent = error ? describe(error) : '';
  node.hidden = !error;
}

// Opens `dialog` at its first step; `onSubmit` runs when its form is sent.
function openDialog(dialog, onSubmit) {
  const form = dialog.querySelector('form');
  dialogError(dialog, null);
  for (const step of dialog.querySelectorAll('[data-step]')) {
    step.hidden = step.dataset.step !== 'ask';
  }
  form.onsubmit = async (event) => {
    event.preventDefault();
    const submit = form.querySelector('button[type=submit]');
    submit.disabled = true;
    dialogError(dialog, null);
    try {
      await onSubmit();
    } catch (e) {
      dialogError(dialog, e);
    } finally {
      submit.disabled = dialog.id === 'delete-dialog' ? $('delete-confirm').value !== 'DELETE'
                                                      : false;
    }
  };
  dialog.showModal();
  const first = form.querySelector('input, select');
  if (first) first.focus();
}

// A key value inside a dialog: read-only text and a Copy button. Removed from
// the page, with every reference to it, when the dialog closes.
function showValue(dialog, value, label) {
  const slot = dialog.querySelector('.secret-slot');
  const input = el('input', { readonly: '', 'aria-label': label, spellcheck: 'false' });
  input.value = value;
  const copied = el('span', { class: 'sub', role: 'status' });
  const copy = el('button', { type: 'button', text: 'Copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(input.value);
      copied.textContent = 'Copied';
    } catch (e) {
      input.select();
      copied.textContent = 'Press Ctrl+C to copy';
    }
  } });
  slot.replaceChildren(el('div', { class: 'secret-row' }, input, copy), copied);
  input.select();
}

function forgetValues(dialog) {
  for (const slot of dialog.querySelectorAll('.secret-slot')) slot.replaceChildren();
}

function showStep(dialog, step) {
  for (const node of dialog.querySelectorAll('[data-step]')) {
    node.hidden = node.dataset.step !== step;
  }
}

function expireTime(days) {
  if (!days) return undefined;
  return new Date(Date.now() + Number(days) * 86400 * 1000).toISOString();
}

function openCreateProject() {
  const dialog = $('project-dialog');
  $('project-name').value = '';
  openDialog(dialog, async () => {
    const created = await api('CreateProject', { name: $('project-name').value.trim() });
    dialog.close();
    await loadProjects(created.project.projectId);
    showNotice(`Created project "${created.project.name}" with its legacy API key.`);
  });
}

function openGenerate(kind) {
  const dialog = $('generate-dialog');
  const secret = kind === 'SECRET_KEY';
  $('generate-dialog-title').textContent = secret ? 'Generate Secret Key' : 'Generate API Key';
  $('key-name').value = '';
  $('key-expiry').value = '';
  openDialog(dialog, async () => {
    const request = { projectId: state.projectId, name: $('key-name').value.trim(),
                      expireTime: expireTime($('key-expiry').value) };
    const made = await api(secret ? 'GenerateSecretKey' : 'GenerateApiKey', request);
    const warning = dialog.querySelector('.warning');
    warning.hidden = !secret;
    warning.textContent = secret
        ? 'This is the only time you will see this secret key. Copy it now and keep it ' +
          'somewhere safe: latchkey keeps only its digest and can never show it again.'
        : '';
    dialog.querySelector('.show-title').textContent =
        secret ? `Your new secret key "${made.key.name}"` : `Your new API key "${made.key.name}"`;
    showValue(dialog, secret ? made.secretKey : made.apiKey, secret ? 'Secret key' : 'API key');
    showStep(dialog, 'show');
    await refresh();
  });
}

async function copyApiKey(key) {
  try {
    const { apiKey } = await api('GetApiKeyValue', { keyId: key.keyId });
    try {
      await navigator.clipboard.writeText(apiKey);
      showNotice(`Copied the API key "${key.name}" to the clipboard.`);
    } catch (e) {
      const dialog = $('copy-dialog');
      showValue(dialog, apiKey, 'API key');
      dialog.showModal();
    }
  } catch (e) {
    showNotice(`Cannot copy "${key.name}": ${describe(e)}`, true);
  }
}

// `after` runs once the key is revoked (the find view shows the key anew).
function openRevoke(key, after = refresh) {
  const dialog = $('revoke-dialog');
  dialog.querySelector('.question').textContent = `Revoke "${key.name}" (${key.hint})?`;
  openDialog(dialog, async () => {
    const revoked = await api('RevokeApiKey', { keyId: key.keyId });
    dialog.close();
    await after();
    await showReceipt(`Revoked "${key.name}"`, revoked.revision);
  });
}

function openRotate(key) {
  const dialog = $('rotate-dialog');
  dialog.querySelector('.question').textContent =
      `Give "${key.name}" (${key.hint}) a new value. Its key id stays the same.`;
  $('rotate-grace').value = '86400s';
  openDialog(dialog, async () => {
    const rotated = await api('RotateApiKey',
                              { keyId: key.keyId, gracePeriod: $('rotate-grace').value });
    dialog.querySelector('.grace-note').textContent = rotated.previousValidUntil
        ? `The old value keeps working until ${formatTime(rotated.previousValidUntil)}.`
        : 'The old value stopped working.';
    showValue(dialog, rotated.apiKey, 'New API key');
    showStep(dialog, 'show');
    await refresh();
    await showReceipt(`Rotated "${key.name}"`, rotated.revision);
  });
}

function openDelete(key) {
  const dialog = $('delete-dialog');
  dialog.querySelector('.question').textContent = `Delete the secret key "${key.name}" (${key.hint})?`;
  const confirm = $('delete-confirm');
  const submit = dialog.querySelector('button[type=submit]');
  confirm.value = '';
  submit.disabled = true;
  confirm.oninput = () => { submit.disabled = confirm.value !== 'DELETE'; };
  openDialog(dialog, async () => {
    await api('DeleteSecretKey', { keyId: key.keyId, confirm: confirm.value });
    dialog.close();
    await refresh();
    showNotice(`Deleted the secret key "${key.name}".`);
  });
}

async function setLeakPolicy() {
  const policy = $('leak-policy').value;
  const project = await api('SetLeakPolicy', { projectId: state.projectId, policy });
  state.projects = state.projects.map((p) => (p.projectId === project.projectId ? project : p));
  renderProjectStatus();
  showNotice(policy === 'LEAK_POLICY_REVOKE'
    ? `A key of "${project.name}" that GitHub finds in public now stops at once.`
    : `A key of "${project.name}" that GitHub finds in public is now recorded and keeps working.`);
}

async function setApiAccess(enabled) {
  const project = await api('SetApiAccess', { projectId: state.projectId, enabled });
  state.projects = state.projects.map((p) => (p.projectId === project.projectId ? project : p));
  await refresh();
  await showReceipt(`API access ${enabled ? 'enabled' : 'disabled'} for "${project.name}"`,
                    project.revision);
}

function toggleAccess() {
  const project = currentProject();
  if (!project) return;
  if (project.apiAccessEnabled !== true) {
    setApiAccess(true).catch((e) => showNotice(describe(e), true));
    return;
  }
  const dialog = $('access-dialog');
  dialog.querySelector('.question').textContent = `Disable API access for "${project.name}"?`;
  openDialog(dialog, async () => {
    await setApiAccess(false);
    dialog.close();
  });
}

// ---------------------------------------------------------------------------
// Find a key: a leak response from the value alone.

async function findKey(event) {
  event.preventDefault();
  const input = $('find-value');
  const value = input.value.trim();
  input.value = '';  // the value is not kept on the page
  const result = $('find-result');
  if (!value) {
    result.replaceChildren(el('p', { class: 'error', text: 'Paste a key value.' }));
    return;
  }
  try {
    renderFound(await api('FindKey', { value }));
  } catch (e) {
    const text = e.status === 404
        ? 'No key has this value: latchkey never issued it, or it was a secret key that has ' +
          'been deleted.'
        : e.status === 400 ? 'That is not a latchkey key: lkp_… or lks_… with a valid checksum.'
                           : `Cannot look it up: ${describe(e)}`;
    result.replaceChildren(el('p', { class: 'error', role: 'alert', text }));
  }
}

function renderFound(key) {
  const project = state.projects.find((p) => p.projectId === key.projectId);
  const kind = key.kind === 'SECRET_KEY' ? 'secret key' : 'API key';
  const revoked = key.state === 'KEY_STATE_REVOKED';
  const match = key.valueMatch || {};
  let which = 'the key\'s current value';
  if (!match.current) {
    which = match.validUntil
        ? `a value the key had before a rotation; it ${new Date(match.validUntil) > new Date()
            ? 'works until' : 'stopped at'} ${formatTime(match.validUntil)}`
        : 'a value the key had before a rotation; it stopped working then';
  }
  const facts = el('dl', {},
                   el('dt', { text: 'Key' }), el('dd', { text: `${key.name} (${key.keyId})` }),
                   el('dt', { text: 'Kind' }), el('dd', { text: kind + (key.legacy ? ', legacy' : '') }),
                   el('dt', { text: 'Project' }),
                   el('dd', { text: `${project ? project.name : '?'} (${key.projectId})` }),
                   el('dt', { text: 'State' }), el('dd', { text: revoked ? 'Revoked' : 'Active' }),
                   el('dt', { text: 'This value' }), el('dd', { text: which }),
                   el('dt', { text: 'Last used' }), el('dd', {}, lastUsed(key)));
  if (revoked) {
    const senders = (key.topRejectingSidecars || [])
        .map((s) => `${s.sidecarId} (${s.count})`).join(', ');
    facts.append(el('dt', { text: 'Rejected since revoked' }),
                 el('dd', { text: `${key.rejectedSinceRevocation || 0}` +
                                  (senders ? `; still sent to ${senders}` : '') }));
  }
  const actions = el('div', { class: 'actions' });
  if (!revoked && key.kind === 'API_KEY' && !key.legacy) {
    actions.append(el('button', { type: 'button', class: 'danger', text: 'Revoke',
                                  onclick: () => openRevoke(key, () => refreshFound(key)) }));
  } else if (!revoked && key.legacy) {
    actions.append(el('p', { text: 'The legacy key cannot be revoked: rotate it.' }),
                   el('button', { type: 'button', class: 'primary', text: 'Rotate',
                                  onclick: () => openRotate(key) }));
  } else if (key.kind === 'SECRET_KEY') {
    actions.append(el('p', { text: 'Secret keys are deleted, not revoked.' }),
                   el('button', { type: 'button', class: 'danger', text: 'Delete',
                                  onclick: () => openDelete(key) }));
  }
  $('find-result').replaceChildren(
      el('h2', { text: `This value belongs to ${kind} "${key.name}"` }), facts, actions);
}

async function refreshFound(key) {
  const fresh = await api('GetKey', { keyId: key.keyId });
  renderFound({ ...fresh, valueMatch: key.valueMatch });
}

// ---------------------------------------------------------------------------
// Receipts: proof that a change reached every sidecar. Sidecars whose stream
// ended without a goodbye still count: they may still be serving.

function sidecarCount(receipt) {
  return (receipt.sidecarsConnected || 0) + (receipt.sidecarsDisconnected || 0);
}

function describeMissing(m) {
  if (!m.disconnectedTime) return m.sidecarId;
  const ago = Math.max(0, Math.round((Date.now() - Date.parse(m.disconnectedTime)) / 1000));
  return `${m.sidecarId} (disconnected ${ago} s ago)`;
}

async function showReceipt(what, revision) {
  showNotice(`${what}. Waiting for sidecars...`);
  const deadline = Date.now() + 5000;
  let receipt = null;
  for (;;) {
    receipt = await api('GetPropagation', { revision });
    if ((receipt.sidecarsApplied || 0) === sidecarCount(receipt) || Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const applied = receipt.sidecarsApplied || 0;
  const sidecars = sidecarCount(receipt);
  if (sidecars === 0) {
    showNotice(`${what}; no sidecars connected.`);
    return;
  }
  const seconds = parseFloat(receipt.slowestApplyDelay || '0s');
  let text = `${what}; applied on ${applied}/${sidecars} sidecars`;
  if (applied > 0) text += ` in ${(seconds * 1000).toFixed(1)} ms`;
  const missing = receipt.missingSidecars || [];
  if (missing.length > 0) text += `; missing: ${missing.map(describeMissing).join(', ')}`;
  showNotice(`${text}.`, applied !== sidecars);
}

// ---------------------------------------------------------------------------
// Views

const VIEWS = {
  '#api-keys': { view: 'keys', title: 'API Keys' },
  '#audit-log': { view: 'audit', title: 'Audit log' },
  '#find-key': { view: 'find', title: 'Find a key' },
};

function showView() {
  const chosen = VIEWS[location.hash] || VIEWS['#api-keys'];
  state.view = chosen.view === 'find' && !canWrite() ? 'keys' : chosen.view;
  $('keys-view').hidden = state.view !== 'keys';
  $('audit-view').hidden = state.view !== 'audit';
  $('find-view').hidden = state.view !== 'find';
  $('project-bar').hidden = state.view === 'find';
  $('view-title').textContent = state.view === 'keys' ? 'API Keys' : chosen.title;
  document.title = `${$('view-title').textContent} · latchkey console`;
  for (const [id, view] of [['nav-keys', 'keys'], ['nav-audit', 'audit'], ['nav-find', 'find']]) {
    if (state.view === view) $(id).setAttribute('aria-current', 'page');
    else $(id).removeAttribute('aria-current');
  }
}

function guarded(action) {
  return () => {
    clearNotice();
    Promise.resolve().then(action).catch((e) => showNotice(describe(e), true));
  };
}

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut());
  $('project-select').addEventListener('change', guarded(async () => {
    state.projectId = $('project-select').value;
    applyRole();
    await refresh();
  }));
  $('new-project').addEventListener('click', guarded(openCreateProject));
  $('generate-api-key').addEventListener('click', guarded(() => openGenerate('API_KEY')));
  $('generate-secret-key').addEventListener('click', guarded(() => openGenerate('SECRET_KEY')));
  $('toggle-access').addEventListener('click', guarded(toggleAccess));
  $('leak-policy').addEventListener('change', guarded(setLeakPolicy));
  $('find-form').addEventListener('submit', findKey);
  window.addEventListener('hashchange', guarded(async () => {
    showView();
    if (state.me) await refresh();
  }));
  for (const dialog of document.querySelectorAll('dialog')) {
    // The 'close' event comes a task later (and covers Escape): a button
    // that closes forgets at once, so no value outlives its dialog.
    dialog.addEventListener('close', () => forgetValues(dialog));
    for (const button of dialog.querySelectorAll('[data-close]')) {
      button.addEventListener('click', () => {
        forgetValues(dialog);
        dialog.close();
      });
    }
  }
  offerSignIn().catch(() => {});
});

// What the sign-in page offers (docs/console.md, "Signing in, and who decides"), and a
// session already open: back from the provider, or a reload.
async function offerSignIn() {
  const config = await (await fetch('/oidc/config', { cache: 'no-store' })).json();
  $('sso-sign-in').hidden = !config.sso;
  $('token-sign-in').hidden = !config.tokenSignIn;
  if (sessionStorage.getItem(TOKEN_KEY)) {
    await start().catch(() => signOut('Sign in again.'));
  } else if (config.sso) {
    await start().catch((e) => {
      if (!(e instanceof ApiError && e.status === 401)) signOut(`Cannot sign in: ${describe(e)}`);
    });
  }
}
