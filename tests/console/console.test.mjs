// The Bifrost console in a real browser against a real Bifrost and a real agent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, readFileSync, existsSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { startBifrost, startAgent, addUser, api, launch, newPage, waitFor, tempDir, screenshots } from './harness.mjs';

let dir, bifrost, agent, browser, page, share, connectorId;
const started = Date.now();

before(async () => {
  dir = tempDir();
  share = join(dir, 'share');
  for (const [rel, text] of [
    ['Finance/2026/Q1/report.txt', 'first quarter'],
    ['Finance/2026/Q1/numbers.csv', 'a,b\n1,2\n'],
    ['Finance/2026/summary.txt', 'summary'],
    ['Finance/readme.txt', 'finance readme'],
    ['Finance/scratch.tmp', 'leave me out'],
    ['Users/alice/cv.txt', 'alice'],
    ['Users/alice/photos/cat.jpg', 'meow'],
    ['Users/bob/notes.txt', 'bob'],
    ['Users/carol/todo.txt', 'carol'],
  ]) {
    mkdirSync(join(share, rel, '..'), { recursive: true });
    writeFileSync(join(share, rel), text);
  }
  mkdirSync(screenshots, { recursive: true });
  bifrost = await startBifrost(dir);
  agent = await startAgent(join(dir, 'home'), bifrost, share);
  browser = await launch();
  page = await newPage(browser);
});

after(async () => {
  await browser?.close();
  agent?.child.kill();
  bifrost?.child.kill();
  console.log(`browser tests took ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

function noErrors() {
  assert.deepEqual(page.errors, [], 'the browser console stayed clean');
}

test('sign in: a wrong token is refused, the right one accepted', async () => {
  await page.goto(bifrost.url + '/');
  await page.getByLabel('Name').waitFor();
  const weight = await page.evaluate(() => performance.getEntries()
    .filter((e) => e.entryType === 'navigation' || e.entryType === 'resource')
    .reduce((sum, e) => sum + e.decodedBodySize, 0));
  console.log(`first page load: ${weight} bytes (uncompressed)`);
  await page.screenshot({ path: join(screenshots, 'sign-in.png') });
  await page.getByRole('button', { name: 'Sign in with a token' }).click();
  await page.getByLabel('Admin token').fill('not-the-token');
  page.expectStatus = 401;
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#login-error', { hasText: 'not the admin token' }).waitFor();
  page.expectStatus = null;
  await page.getByLabel('Admin token').fill(bifrost.token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Connectors' }).waitFor();
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'bifrost_session');
  assert.ok(session.httpOnly && session.secure && session.sameSite === 'Strict');
  noErrors();
});

test('authorize a connector by key and see it online; a bad key shows an error', async () => {
  await page.locator('#connectors').getByText('waiting').waitFor();
  await page.getByRole('button', { name: 'Authorize New Connector' }).click();
  await page.getByLabel('Connector key').fill('not a key');
  await page.getByRole('button', { name: 'Authorize', exact: true }).click();
  await page.getByRole('dialog').getByText('32 hexadecimal characters').waitFor();
  await page.getByLabel('Connector key').fill('0123456789abcdef0123456789abcdef');
  page.expectStatus = 404;
  await page.getByRole('button', { name: 'Authorize', exact: true }).click();
  await page.getByRole('dialog').getByText('no agent is waiting with this key').waitFor();
  page.expectStatus = null;
  await page.getByLabel('Name').fill('Finance server');
  await page.getByLabel('Connector key').fill(`  ${agent.key}  `);
  await page.getByRole('button', { name: 'Authorize', exact: true }).click();
  const row = page.locator('#connectors tr', { hasText: 'Finance server' });
  await row.getByText('online').waitFor();
  connectorId = await row.getAttribute('data-id');
  assert.ok(connectorId);
  await page.screenshot({ path: join(screenshots, 'connectors.png') });
  noErrors();
});

test('browse into a nested folder', async () => {
  await page.locator('#connectors tr', { hasText: 'Finance server' }).getByRole('link', { name: 'Browse' }).click();
  await page.getByRole('heading', { name: 'Browse Finance server' }).waitFor();
  await page.getByRole('button', { name: share }).click();
  await page.locator('table.entries').getByRole('button', { name: 'Finance', exact: true }).click();
  await page.locator('table.entries').getByRole('button', { name: '2026', exact: true }).click();
  await page.locator('table.entries').getByRole('button', { name: 'Q1', exact: true }).click();
  await page.locator('table.entries').getByText('report.txt').waitFor();
  await page.locator('table.entries').getByText('numbers.csv').waitFor();
  // Folders first, and a total size on request.
  await page.getByRole('navigation', { name: 'Folder path' }).getByRole('button', { name: '2026' }).click();
  const first = page.locator('table.entries tbody tr').first();
  await first.getByText('Q1').waitFor();
  await first.getByRole('button', { name: 'Total size of Q1' }).click();
  await first.getByText('in 2 files').waitFor();
  await page.screenshot({ path: join(screenshots, 'browse.png') });
  noErrors();
});

async function wizardTo(step) {
  await page.locator('.steps li[aria-current="step"]', { hasText: step }).waitFor();
}

test('a transfer through the wizard reaches 100 %, with its report and CSV', async () => {
  const dest = join(dir, 'dest');
  await page.getByRole('link', { name: 'New transfer' }).first().click();
  await wizardTo('Source');
  await page.getByRole('radio', { name: /Finance server/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Choose');
  await page.getByRole('button', { name: share }).click();
  await page.getByRole('checkbox', { name: 'Select Finance' }).check();
  await page.getByText('1 selected').waitFor();
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Destination');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#wizard-error', { hasText: 'absolute folder path' }).waitFor();
  await page.getByLabel('Destination folder on the Bifrost machine').fill(dest);
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Options');
  await page.getByLabel('Leave out').fill('*.tmp');
  await page.getByLabel('Bandwidth limit (MB/s)').fill('50');
  await page.getByLabel(/compare files by content/).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Review');
  await page.locator('#review', { hasText: '4 files' }).waitFor();
  await page.locator('dd', { hasText: '50.0 MB/s' }).waitFor();
  await page.screenshot({ path: join(screenshots, 'wizard-review.png') });
  await page.getByRole('button', { name: 'Start transfer' }).click();
  await page.locator('.badge.completed').first().waitFor({ timeout: 30000 });
  await page.locator('#stat-percent', { hasText: '100 %' }).waitFor();
  await page.locator('#files').getByRole('cell', { name: /share\/Finance\/2026\/Q1\/report\.txt$/ }).waitFor();
  await page.screenshot({ path: join(screenshots, 'job.png'), fullPage: true });
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download report (CSV)' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv.split('\r\n')[0], /^source,destination,size,status,reason,blake3,kind$/);
  assert.equal(csv.trim().split('\r\n').length, 5, csv);
  assert.equal(readFileSync(join(dest, 'Finance/2026/Q1/report.txt'), 'utf8'), 'first quarter');
  assert.equal(readFileSync(join(dest, 'Finance/readme.txt'), 'utf8'), 'finance readme');
  assert.ok(!existsSync(join(dest, 'Finance/scratch.tmp')), 'the excluded file stayed behind');
  const { body: jobs } = await api(bifrost, 'GET', '/jobs');
  assert.equal(jobs[0].bandwidth_limit, 50000000);
  assert.equal(jobs[0].compare, 'blake3');
  assert.equal(jobs[0].delete_removed, false);
  noErrors();
});

test('rerun after changing one source file copies exactly one file', async () => {
  const file = join(share, 'Finance/2026/summary.txt');
  writeFileSync(file, 'summary, revised');
  const later = new Date(Date.now() + 5000);
  utimesSync(file, later, later);
  await page.getByRole('button', { name: 'Rerun (new and changed files)' }).click();
  await page.locator('.badge.completed').first().waitFor({ timeout: 30000 });
  await page.locator('#stat-files', { hasText: '4 / 4' }).waitFor();
  await page.locator('#stat-skipped', { hasText: '3' }).waitFor();
  await page.getByRole('button', { name: 'Copied', exact: true }).click();
  const rows = page.locator('#files tbody tr');
  await waitFor('one copied file in the report', async () => (await rows.count()) === 1);
  await rows.first().getByRole('cell', { name: /share\/Finance\/2026\/summary\.txt$/ }).waitFor();
  assert.equal(readFileSync(join(dir, 'dest/Finance/2026/summary.txt'), 'utf8'), 'summary, revised');
  noErrors();
});

test('home-drives mode lands each user folder in its own destination', async () => {
  const drives = join(dir, 'drives');
  await page.getByRole('link', { name: 'New transfer' }).first().click();
  await page.getByRole('radio', { name: /Finance server/ }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByRole('button', { name: share }).click();
  await page.getByRole('checkbox', { name: 'Select Users' }).check();
  await page.getByRole('button', { name: 'Next' }).click();
  await page.getByLabel('Destination folder on the Bifrost machine').fill(drives);
  await page.getByRole('radio', { name: 'Home drives' }).check();
  const table = page.locator('#mappings');
  await table.getByText(join(share, 'Users/carol')).waitFor();
  assert.equal(await table.locator('tbody tr').count(), 3);
  // Edit one target by hand; export the table as CSV.
  await page.getByLabel('Destination for bob').fill(join(drives, 'robert'));
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(csv, /robert/);
  await page.screenshot({ path: join(screenshots, 'home-drives.png') });
  // Import a CSV that renames carol's target.
  const edited = csv.replace(join(drives, 'carol'), join(drives, 'caroline'));
  const csvFile = join(dir, 'mapping.csv');
  writeFileSync(csvFile, edited);
  await page.locator('#mapping-import').setInputFiles(csvFile);
  await waitFor('the imported target', async () => (await page.getByLabel('Destination for carol').inputValue()) === join(drives, 'caroline'));
  await page.getByRole('button', { name: 'Next' }).click();
  await wizardTo('Options');
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#review', { hasText: '4 files' }).waitFor();
  await page.getByRole('button', { name: 'Start transfer' }).click();
  await page.locator('.badge.completed').first().waitFor({ timeout: 30000 });
  assert.equal(readFileSync(join(drives, 'alice/cv.txt'), 'utf8'), 'alice');
  assert.equal(readFileSync(join(drives, 'alice/photos/cat.jpg'), 'utf8'), 'meow');
  assert.equal(readFileSync(join(drives, 'robert/notes.txt'), 'utf8'), 'bob');
  assert.equal(readFileSync(join(drives, 'caroline/todo.txt'), 'utf8'), 'carol');
  noErrors();
});

test('the jobs list, and a narrow window', async () => {
  await page.getByRole('link', { name: 'Transfers' }).click();
  await page.locator('#jobs tbody tr').nth(2).waitFor();
  await page.screenshot({ path: join(screenshots, 'jobs.png') });
  const narrow = await newPage(browser, { width: 390, height: 800 });
  await narrow.goto(bifrost.url + '/');
  await narrow.getByRole('button', { name: 'Sign in with a token' }).click();
  await narrow.getByLabel('Admin token').fill(bifrost.token);
  await narrow.keyboard.press('Enter');
  await narrow.locator('#connectors').getByText('Finance server').waitFor();
  const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a narrow window`);
  await narrow.screenshot({ path: join(screenshots, 'narrow.png') });
  assert.deepEqual(narrow.errors, []);
  await narrow.context().close();
  noErrors();
});

test('revoke the connector and see it leave the list', async () => {
  await page.getByRole('link', { name: 'Connectors' }).click();
  const row = page.locator('#connectors tr', { hasText: 'Finance server' });
  await row.getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('dialog').getByText('disconnected at once').waitFor();
  await page.getByRole('button', { name: 'Revoke', exact: true }).last().click();
  await waitFor('the connector to leave the list', async () => (await page.locator('#connectors tr', { hasText: 'Finance server' }).count()) === 0);
  const { body } = await api(bifrost, 'GET', '/connectors');
  assert.ok(!body.some((c) => c.id === connectorId));
  noErrors();
});

test('a user signs in with a one-time password and must choose a new one first', async () => {
  const password = addUser(bifrost, 'alice', 'operator');
  const p = await newPage(browser);
  await p.goto(bifrost.url + '/');
  await p.getByLabel('Name').fill('alice');
  await p.getByLabel('Password', { exact: true }).fill('not the password');
  p.expectStatus = 401;
  await p.getByRole('button', { name: 'Sign in', exact: true }).click();
  await p.locator('#login-error', { hasText: 'wrong name or password' }).waitFor();
  p.expectStatus = null;
  await p.getByLabel('Password', { exact: true }).fill(password);
  await p.keyboard.press('Enter');
  await p.getByRole('heading', { name: 'Choose a new password' }).waitFor();
  await p.screenshot({ path: join(screenshots, 'new-password.png') });
  await p.getByLabel('New password', { exact: true }).fill('a long new password');
  await p.getByLabel('New password again').fill('a long new password');
  await p.getByRole('button', { name: 'Save password' }).click();
  await p.getByRole('heading', { name: 'Connectors' }).waitFor();
  const me = await p.evaluate(async () => (await fetch('/api/v1/session')).json());
  assert.equal(me.name, 'alice');
  assert.equal(me.must_change, false);
  assert.deepEqual(p.errors, []);
  await p.context().close();
  noErrors();
});
