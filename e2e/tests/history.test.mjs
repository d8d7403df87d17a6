// A long conversation: it opens at the first unread message, and scrolling up loads the older
// pages from REST until the beginning, each message once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { openChat, signIn } from '../lib/browser.mjs';
import { createDirectChat, markRead, registerUser, sendMessage } from '../lib/rest.mjs';

const env = useStackAndBrowser();

test('a long chat opens at the first unread, and older messages load on scrolling up', async () => {
  const stamp = Date.now().toString(36);
  const gil = await registerUser(env.stack, `gil${stamp}`, 'Gil History');
  const hana = await registerUser(env.stack, `hana${stamp}`, 'Hana Reader');
  const chat = await createDirectChat(env.stack, gil, hana.id);
  const total = 75;
  for (let i = 1; i <= total; i++) await sendMessage(env.stack, gil, chat.id, `message ${i}`);
  await markRead(env.stack, hana, chat.id, 70);

  const { context, page } = await signIn(env, hana);
  const item = page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: /^Gil History/ });
  await expect(item.locator('.badge')).toHaveText('5');

  await openChat(page, 'Gil History');
  // The first unread (71) is marked; only the newest page was loaded.
  await expect(page.locator('#first-unread + .group .msg .text').first()).toHaveText('message 71');
  const firstShown = await page.locator('.log .msg').first().getAttribute('data-seq');
  assert.ok(Number(firstShown) > 1, `only a page is loaded at first (from seq ${firstShown})`);

  // Scroll to the top until the beginning is there.
  await expect.poll(
    async () => {
      await page.locator('.log').evaluate((log) => log.scrollTo(0, 0));
      return page.locator('.log .msg').count();
    },
    (n) => assert.equal(n, total),
  );
  const seqs = await page.locator('.log .msg').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, Array.from({ length: total }, (_, i) => i + 1), 'each message once, in order');
  await expect(page.locator('.log .older')).toHaveCount(0);

  // Reading far up when Gil writes: a button offers the way down.
  await sendMessage(env.stack, gil, chat.id, 'are you still there?');
  const below = page.getByRole('button', { name: 'New messages' });
  await below.click();
  await expect(below).toBeHidden();
  const atBottom = await page.locator('.log').evaluate((log) => log.scrollHeight - log.scrollTop - log.clientHeight < 80);
  assert.ok(atBottom, 'scrolled to the newest message');
  await expect(page.locator('.log .msg .text').last()).toHaveText('are you still there?');

  // A draft waits while you look elsewhere.
  await page.getByRole('textbox', { name: 'Message Gil History' }).fill('half-written reply');
  await page.keyboard.press('Escape');
  await openChat(page, 'Gil History');
  await expect.poll(
    () => page.getByRole('textbox', { name: 'Message Gil History' }).inputValue(),
    (v) => assert.equal(v, 'half-written reply'),
  );
  await context.close();
});
