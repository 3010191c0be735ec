// Test harness: real `bifrost` and `agent` processes on loopback, and Debian's Chromium.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const target = process.env.CARGO_TARGET_DIR || join(homedir(), '.cache', 'mover-target');
export const bin = (name) => {
  const p = join(target, 'debug', name);
  if (!existsSync(p)) throw new Error(`${p} is missing: run "cargo build --bins" first`);
  return p;
};

export const tempDir = () => mkdtempSync(join(tmpdir(), 'bifrost-console-'));

const children = new Set();
process.on('exit', () => { for (const c of children) c.kill('SIGKILL'); });

// Starts a process and resolves once `ready` matches a line of its output.
function start(cmd, args, env, ready) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    const lines = [];
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} did not start: ${lines.join('\n')}`)), 20000);
    const onData = (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      if (ready(lines)) { clearTimeout(timer); resolvePromise({ child, lines }); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => {
      lines.push(...String(d).split('\n').filter(Boolean));
      if (ready(lines)) { clearTimeout(timer); resolvePromise({ child, lines }); }
    });
    child.on('exit', (code) => { children.delete(child); clearTimeout(timer); if (code !== null && code !== 0) reject(new Error(`${cmd} exited with ${code}: ${lines.join('\n')}`)); });
  });
}

export async function startBifrost(dir) {
  const { child, lines } = await start(bin('bifrost'), ['serve', '--listen', '127.0.0.1:0', '--data', join(dir, 'data')], { BIFROST_LOG: 'warn' },
    (l) => l.some((x) => x.startsWith('Admin token: ')));
  const pick = (prefix) => lines.find((x) => x.startsWith(prefix)).slice(prefix.length);
  // With stdout piped Bifrost shows only the token's start; the file holds it.
  const token = readFileSync(join(dir, 'data', 'admin.token'), 'utf8').trim();
  return { child, url: pick('Bifrost listening on '), fingerprint: pick('TLS certificate SHA-256 fingerprint: '), token, data: join(dir, 'data') };
}

// Adds a console account with `bifrost user add`; returns its one-time password.
export function addUser(bifrost, name, role) {
  const out = spawnSync(bin('bifrost'), ['user', 'add', name, '--role', role, '--data', bifrost.data], { encoding: 'utf8' });
  const line = out.stdout.split('\n').find((l) => l.startsWith('One-time password: '));
  if (out.status !== 0 || !line) throw new Error(`bifrost user add failed: ${out.stdout}${out.stderr}`);
  return line.slice('One-time password: '.length);
}

export async function startAgent(home, bifrost, share) {
  mkdirSync(home, { recursive: true });
  const { child } = await start(bin('agent'), ['start', '--relay', bifrost.url, '--relay-fingerprint', bifrost.fingerprint, '--share', share],
    { MOVER_AGENT_HOME: home }, (l) => l.includes('Ctrl-C To Stop'));
  // With stdout piped the agent shows only the key's start; its home holds it.
  return { child, key: readFileSync(join(home, 'connector.key'), 'utf8').trim() };
}

// Bearer-token API calls for setting up and checking, outside the browser.
export async function api(bifrost, method, path, body) {
  const { request } = await import('node:https');
  return new Promise((resolvePromise, reject) => {
    const req = request(`${bifrost.url}/api/v1${path}`, {
      method, rejectUnauthorized: false,
      headers: { Authorization: `Bearer ${bifrost.token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolvePromise({ status: res.statusCode, body: data ? JSON.parse(data) : null }));
    });
    req.on('error', reject);
    if (body) req.write(JSON.stringify(body));
    req.end();
  });
}

export async function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    // Playwright gives each launch a fresh, empty profile of its own.
  });
}

// A page that records every console error and failed request, for the no-errors check.
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  // The test made Bifrost's certificate itself; product code never skips the check.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.errors = [];
  // Tests that provoke an error answer on purpose (a wrong token, an unknown key) set
  // `page.expectStatus`; the browser logs such answers as console errors.
  page.expectStatus = null;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (page.expectStatus && text.includes(`status of ${page.expectStatus}`)) return;
    page.errors.push(`console: ${text}`);
  });
  page.on('pageerror', (e) => page.errors.push(`page: ${e.message}`));
  return page;
}

export async function waitFor(what, fn, timeout = 30000) {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - start > timeout) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const screenshots = join(repo, 'docs', 'screenshots');

// Where scripts/setup put the object-store emulators.
const tools = process.env.MOVER_TOOLS || join(homedir(), '.cache', 'mover-tools');

// A moto S3 server of its own on a port the kernel picks. Until `enableAuth` it checks no
// signature, so buckets and objects are planted with unsigned requests.
export async function startMoto() {
  if (!existsSync(join(tools, 'venv', 'bin', 'moto_server'))) throw new Error(`${tools}/venv/bin/moto_server is missing: run scripts/setup first`);
  const { child, lines } = await start(join(tools, 'venv', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', '0'], {},
    (l) => l.some((x) => /Running on http:\/\/127\.0\.0\.1:\d+/.test(x)));
  const endpoint = lines.map((x) => x.match(/Running on (http:\/\/127\.0\.0\.1:\d+)/)).find(Boolean)[1];
  const put = async (path, body) => {
    const res = await fetch(`${endpoint}/${path}`, { method: 'PUT', body: body ?? '' });
    if (res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
  };
  return {
    child, endpoint,
    createBucket: (bucket) => put(bucket),
    putObject: (bucket, key, body) => put(`${bucket}/${key}`, body),
    // An IAM user allowed s3:*, made with boto3 while moto checks nothing; its key pair comes
    // back on a pipe, never on a command line.
    iamUser: () => new Promise((resolvePromise, reject) => {
      const script = `
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
iam.create_user(UserName="mover")
iam.put_user_policy(UserName="mover", PolicyName="s3", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="mover")["AccessKey"]
print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
`;
      const py = spawn(join(tools, 'venv', 'bin', 'python'), ['-c', script, endpoint], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '', err = '';
      py.stdout.on('data', (d) => { out += d; });
      py.stderr.on('data', (d) => { err += d; });
      py.on('exit', (code) => (code === 0 ? resolvePromise(JSON.parse(out)) : reject(new Error(`iam user: ${err}`))));
    }),
    // From now on moto checks every request's signature against its IAM users.
    enableAuth: async () => {
      const res = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: '0' });
      if (res.status !== 200) throw new Error(`reset-auth: ${res.status} ${await res.text()}`);
    },
  };
}

// Signs `page` in with the admin token through the sign-in form.
export async function signIn(page, bifrost) {
  await page.goto(bifrost.url + '/');
  await page.getByRole('button', { name: 'Sign in with a token' }).click();
  await page.getByLabel('Admin token').fill(bifrost.token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
}

// Signs `page` in as account `name` through the sign-in form. A new account's first sign-in
// asks for a new password: it is chosen here (`fresh`, which is returned) and the form sent.
export async function signInAs(page, bifrost, name, password, fresh = `${name}: a long new password`) {
  await page.goto(bifrost.url + '/');
  await page.getByLabel('Name').fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.keyboard.press('Enter');
  const change = page.getByRole('heading', { name: 'Choose a new password' });
  const landed = page.locator('#main h1').filter({ hasNotText: /Sign in|Choose a new password/ });
  await change.or(landed).first().waitFor();
  if (await change.isVisible()) {
    await page.getByLabel('New password', { exact: true }).fill(fresh);
    await page.getByLabel('New password again').fill(fresh);
    await page.getByRole('button', { name: 'Save password' }).click();
    await landed.first().waitFor();
    return fresh;
  }
  return password;
}

// An API call made by the page itself, with its session cookie and CSRF token: what a user
// could force from the browser's console whatever the console shows.
export async function pageApi(page, method, path, body) {
  return page.evaluate(async ([method, path, body]) => {
    const { csrf } = await (await fetch('/api/v1/session')).json();
    const res = await fetch('/api/v1' + path, {
      method,
      headers: { 'X-CSRF-Token': csrf, ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: res.status, body: json };
  }, [method, path, body ?? null]);
}

// The accessible names of the visible links and buttons on the page: what a user can click.
export async function controls(page) {
  return page.evaluate(() => [...document.querySelectorAll('a[href], button, [role=button], input[type=submit]')]
    .filter((el) => el.checkVisibility())
    .map((el) => (el.getAttribute('aria-label') || el.textContent || el.value || '').replace(/\s+/g, ' ').trim()));
}
