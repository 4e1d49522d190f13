// The real latchkey stack for browser tests: an authority (embedded RocksDB
// in a temp dir), a sidecar and the console, as processes on loopback ports,
// plus latchkeyctl to act and to ask the sidecar for verdicts, and GitHub's
// secret scanning as a signing key that reports leaked values.
import { spawn, execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { chromium } from 'playwright-core';

const run = promisify(execFile);

export function binDir() {
  const dir = process.env.LATCHKEY_BIN_DIR;
  if (!dir) throw new Error('set LATCHKEY_BIN_DIR to the folder holding the built binaries');
  return dir;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Debian's chromium, driven by playwright-core (it downloads no browser).
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
}

// How long a process of the stack may take to answer once started: generous,
// for a CI machine with two cores busy with other tests (a ceiling, not a
// measurement).
const START_MS = 30000;

export async function eventually(check, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export class Stack {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'latchkey-console-'));
    this.processes = [];
  }

  start(name, args) {
    const log = openSync(join(this.dir, `${name}.log`), 'a');
    const child = spawn(join(binDir(), name), args, { stdio: ['ignore', log, log] });
    this.processes.push(child);
    return child;
  }

  log(name) {
    return readFileSync(join(this.dir, `${name}.log`), 'utf8');
  }

  async ctl(...args) {
    try {
      const { stdout } = await run(join(binDir(), 'latchkeyctl'),
                                   ['--authority', this.authority, '--token-file',
                                    join(this.dir, 'data', 'admin.token'), ...args]);
      return { code: 0, out: stdout };
    } catch (e) {
      return { code: e.code, out: e.stdout || '', err: e.stderr || '' };
    }
  }

  async healthy(address) {
    return (await this.ctl('health', address)).code === 0;
  }

  // The sidecar's verdict on a key: "VALID", "REVOKED", ...
  async verdict(key) {
    const { out } = await this.ctl('validate', key, '--sidecar', this.sidecar);
    return out.split(/\s/)[0];
  }

  // GitHub's secret scanning reports `tokens` found at `url`, signed as
  // GitHub signs (ECDSA P-256, SHA-256, base64 DER); returns the answer.
  async reportLeak(tokens, url) {
    const body = JSON.stringify(tokens.map((token) => (
      { token, type: 'latchkey_api_key', url, source: 'content' })));
    const response = await fetch(`${this.leakReportUrl}/secret-scanning/github`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json',
                 'Github-Public-Key-Identifier': 'browser-test-key',
                 'Github-Public-Key-Signature':
                     sign('sha256', Buffer.from(body), this.github.privateKey).toString('base64') },
      body,
    });
    if (!response.ok) throw new Error(`leak report: HTTP ${response.status}`);
    return response.json();
  }

  async createPrincipal(name, role) {
    const { code, out } = await this.ctl('-o', 'json', 'principal', 'create', name, '--role', role);
    if (code !== 0) throw new Error(`cannot create principal ${name}`);
    return JSON.parse(out).token;
  }

  // `options`: consolePort (chosen beforehand, for an identity provider's
  // redirect URL), and extra authorityArgs and consoleArgs.
  async up({ consolePort = 0, authorityArgs = [], consoleArgs = [] } = {}) {
    this.authority = `127.0.0.1:${await freePort()}`;
    this.sidecar = `127.0.0.1:${await freePort()}`;
    consolePort = consolePort || await freePort();
    const leakPort = await freePort();
    this.leakReportUrl = `http://127.0.0.1:${leakPort}`;
    this.github = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const githubKeys = join(this.dir, 'github_keys.json');
    writeFileSync(githubKeys, JSON.stringify({ public_keys: [{
      key_identifier: 'browser-test-key', is_current: true,
      key: this.github.publicKey.export({ type: 'spki', format: 'pem' }) }] }));
    this.start('latchkey-authority', ['--listen', this.authority, '--data-dir',
                                      join(this.dir, 'data'), '--metrics-listen', '127.0.0.1:0',
                                      '--leak-report-listen', `127.0.0.1:${leakPort}`,
                                      '--github-keys-file', githubKeys, ...authorityArgs]);
    if (!await eventually(() => this.healthy(this.authority), START_MS)) {
      throw new Error(`authority did not start:\n${this.log('latchkey-authority')}`);
    }
    this.adminToken = readFileSync(join(this.dir, 'data', 'admin.token'), 'utf8').trim();
    const sidecarTokenFile = join(this.dir, 'sidecar.token');
    const sidecarToken = await this.createPrincipal('browser-test sidecar', 'SIDECAR');
    writeFileSync(sidecarTokenFile, sidecarToken, { mode: 0o600 });
    this.start('latchkey-sidecar', ['--listen', this.sidecar, '--authority', this.authority,
                                    '--token-file', sidecarTokenFile, '--sidecar-id', 'pod-1',
                                    '--metrics-listen', '127.0.0.1:0', '--usage-interval', '0.2']);
    this.start('latchkey-console', ['--listen', `127.0.0.1:${consolePort}`,
                                    '--authority', this.authority, ...consoleArgs]);
    this.url = `http://127.0.0.1:${consolePort}/`;
    const consoleUp = await eventually(async () => {
      try {
        return (await fetch(this.url)).ok;
      } catch (e) {
        return false;
      }
    }, START_MS);
    if (!consoleUp) throw new Error(`console did not start:\n${this.log('latchkey-console')}`);
    if (!await eventually(() => this.healthy(this.sidecar), START_MS)) {
      throw new Error(`sidecar did not start:\n${this.log('latchkey-sidecar')}`);
    }
  }

  async down() {
    await Promise.all(this.processes.map((child) => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.on('exit', resolve);
      child.kill('SIGTERM');
    })));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
