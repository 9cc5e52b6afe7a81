/**
 * The dashboard in a real headless Chromium (Debian's `chromium`, driven by playwright-core; no browser
 * download). The page is loaded from a daemon this test starts; a mailbox made by a test process
 * appears; its depth and rate update live while another process sends; peek shows a queued message
 * without consuming it (the depth is unchanged and a later receive still gets it); the same action
 * without the token is refused; a screenshot is written as an artifact.
 *
 * No Chromium is a failure with a message saying how to install it, never a skip.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { connect, type IpcProcess, type Mailbox } from '../../src/index.js';
import { dashboardUrl } from '../helpers/dashboard-harness.js';
import { type Daemon, startDaemon, tempDir, waitFor } from '../helpers/kernel-harness.js';

function chromiumPath(): string {
  const given = process.env.CHROMIUM_PATH;
  if (given !== undefined && existsSync(given)) return given;
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
    } catch {
      // not this one
    }
  }
  throw new Error(
    'the dashboard browser test needs Chromium: apt-get install -y chromium (or set CHROMIUM_PATH); .ci/run installs it',
  );
}

describe('dashboard in headless Chromium', () => {
  let d: Daemon;
  let base: string;
  let token: string;
  let browser: Browser;
  let page: Page;
  let owner: IpcProcess;
  let sender: IpcProcess;
  let box: Mailbox;
  const artifacts = tempDir('ipcbox-dashboard-artifacts-');

  before(async () => {
    const executablePath = chromiumPath();
    d = await startDaemon(['--http', '0']);
    ({ base, token } = dashboardUrl(d));
    // Chromium's sandbox refuses to run as root (CI runs as root): without it there, with it elsewhere.
    const args = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
    browser = await chromium.launch({ executablePath, args, headless: true });
    owner = await connect({ socketPath: d.socketPath, name: 'order-service' });
    sender = await connect({ socketPath: d.socketPath, name: 'order-producer' });
  });
  after(async () => {
    await browser?.close();
    await sender?.close();
    await owner?.close();
    await d?.stop();
  });

  const depthCell = (p: Page) => p.locator('tr[data-mailbox="orders"] td[data-col="depth"]');
  const rateCell = (p: Page) => p.locator('tr[data-mailbox="orders"] td[data-col="rateIn"]');

  test('the page loads from the daemon and a mailbox a process creates appears', async () => {
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}#token=${token}`);
    await page.waitForSelector('#kernel:has-text("kernel pid")');
    await page.waitForSelector('#auth-state:has-text("actions as ipcbox-dashboard")');
    box = await owner.createMailbox('orders', { capacity: 1000 });
    await page.waitForSelector('tr[data-mailbox="orders"]', { timeout: 10_000 });
    assert.equal(await depthCell(page).textContent(), '0');
    assert.deepEqual(errors, []);
  });

  test('depth and rate update live as another process sends', async () => {
    const to = await sender.openMailbox('orders');
    let sent = 0;
    let sending = true;
    // About 100 messages a second for as long as the page needs to show them.
    const loop = (async () => {
      while (sending) {
        for (let i = 0; i < 10; i++) await to.send({ order: ++sent, item: 'widget' });
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const depths: number[] = [];
      await waitFor(
        async () => {
          const v = Number(await depthCell(page).textContent());
          if (depths.at(-1) !== v) depths.push(v);
          return depths.length >= 3 && Number(await rateCell(page).textContent()) > 0;
        },
        15_000,
        'the depth to change twice and the rate to be above 0',
      );
      assert.ok(
        depths.every((v, i) => i === 0 || v > depths[i - 1]!),
        `depth grew: ${depths}`,
      );
    } finally {
      sending = false;
      await loop;
    }
    await waitFor(async () => Number(await depthCell(page).textContent()) === sent, 5000, 'the final depth');
  });

  test('peek shows a queued message without consuming it', async () => {
    const before = (await box.stat()).depth;
    await page.locator('tr[data-mailbox="orders"] button[data-act="peek"]').click();
    await page.waitForSelector('#confirm[open]');
    await page.fill('#f-count', '3');
    await page.click('#confirm-ok');
    await page.waitForSelector('#peek-result .peeked');
    const text = await page.locator('#peek-result').textContent();
    assert.match(text ?? '', /"order": 1/);
    assert.match(text ?? '', /from order-producer/);
    assert.equal(await page.locator('#peek-result .peeked').count(), 3);
    // The detail panel shows the wait-time histogram for the mailbox (deliveries come below).
    assert.equal((await box.stat()).depth, before, 'peek took nothing out');
    const first = await box.receive();
    assert.deepEqual(first.data, { order: 1, item: 'widget' });
    await waitFor(async () => Number(await depthCell(page).textContent()) === before - 1, 5000, 'depth - 1');
    await page.waitForSelector('#histogram div');
    await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
    assert.ok(existsSync(join(artifacts, 'dashboard.png')));
    console.log(`screenshot: ${join(artifacts, 'dashboard.png')}`);
    if (process.env.IPCBOX_DOCS_SCREENSHOT !== undefined) {
      await page.screenshot({ path: process.env.IPCBOX_DOCS_SCREENSHOT });
    }
  });

  test('the same peek without the token is refused, and shows nothing', async () => {
    const stranger = await browser.newPage();
    try {
      await stranger.goto(base);
      await stranger.waitForSelector('tr[data-mailbox="orders"]');
      assert.match((await stranger.locator('#auth-state').textContent()) ?? '', /locked/);
      await stranger.locator('tr[data-mailbox="orders"] button[data-act="peek"]').click();
      await stranger.click('#confirm-ok');
      await stranger.waitForSelector('#notice.error');
      assert.match((await stranger.locator('#notice').textContent()) ?? '', /peek refused: .*UNAUTHORIZED/);
      assert.equal(await stranger.locator('#peek-result .peeked').count(), 0);
      // Delete too: confirmed, refused, the mailbox still there.
      await stranger.locator('tr[data-mailbox="orders"] button[data-act="delete"]').click();
      await stranger.click('#confirm-ok');
      await waitFor(
        async () =>
          /delete refused: .*UNAUTHORIZED/.test((await stranger.locator('#notice').textContent()) ?? ''),
        5000,
        'the refusal',
      );
      assert.ok((await owner.listMailboxes()).some((m) => m.name === 'orders'));
    } finally {
      await stranger.close();
    }
  });
});
