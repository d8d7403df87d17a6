// Desktop notifications: Ana turns them on with the switch in the sidebar (the browser has granted
// the site); a message in a chat she does not have open shows one — who, what, one per chat — and
// clicking it opens the chat; none for the chat she is looking at, none for her own messages from
// another device; reading the chat elsewhere closes it; off, nothing shows, and the choice stays
// after a reload; where the browser refuses, the switch says it is blocked.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { messageAt, openChat, recordNotifications, signIn } from '../lib/browser.mjs';
import { createDirectChat, createGroup, markRead, registerUser, sendMessage } from '../lib/rest.mjs';

const env = useStackAndBrowser();
const stamp = Date.now().toString(36);
let ana;
let bob;
let cy;
let anaBob;
let anaCy;
let group;
let page;

const toggle = (p) => p.getByRole('switch', { name: 'Desktop notifications' });
const shown = (p) => p.evaluate(() => window.__notifications);
const chatItem = (p, title) => p.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: new RegExp(`^${title}`) });

test('a message in a chat Ana does not have open notifies her, and the notification opens the chat', async () => {
  ana = await registerUser(env.stack, `ana${stamp}`, 'Ana Notified');
  bob = await registerUser(env.stack, `bob${stamp}`, 'Bob Notifier');
  cy = await registerUser(env.stack, `cy${stamp}`, 'Cy Notifier');
  anaBob = await createDirectChat(env.stack, ana, bob.id);
  anaCy = await createDirectChat(env.stack, ana, cy.id);
  group = await createGroup(env.stack, bob, 'Book club', [ana.id, cy.id]);
  ({ page } = await signIn(env, ana, { init: recordNotifications, permissions: ['notifications'] }));

  await expect(toggle(page)).toHaveAttribute('aria-checked', 'false');
  await expect(toggle(page)).toHaveText('Desktop notifications: off');
  await toggle(page).click();
  await expect(toggle(page)).toHaveAttribute('aria-checked', 'true');
  await expect(toggle(page)).toHaveText('Desktop notifications: on');
  await openChat(page, 'Cy Notifier');

  await sendMessage(env.stack, bob, anaBob.id, 'Are you coming tonight?');
  await expect.poll(() => shown(page), (n) => assert.equal(n.length, 1));
  assert.deepEqual((await shown(page))[0], { title: 'Bob Notifier', body: 'Are you coming tonight?', tag: anaBob.id, closed: false });
  // In a group, the title says where; each chat has its own tag (a newer one replaces its chat's).
  await sendMessage(env.stack, cy, group.id, 'Chapter 3 by Friday');
  await expect.poll(() => shown(page), (n) => assert.equal(n.length, 2));
  assert.deepEqual((await shown(page))[1], { title: 'Cy Notifier in Book club', body: 'Chapter 3 by Friday', tag: group.id, closed: false });

  // Nothing for the chat Ana is looking at, nor for what she sent from her phone: each shows in
  // the page first, and the notifying is done by then.
  await sendMessage(env.stack, cy, anaCy.id, 'you are looking at this');
  await expect(messageAt(page, 1).locator('.text')).toHaveText('you are looking at this');
  await sendMessage(env.stack, ana, group.id, 'from my phone');
  await expect(chatItem(page, 'Book club')).toContainText('You: from my phone');
  assert.equal((await shown(page)).length, 2);

  // Clicking Bob's opens his chat, and it closes.
  await page.evaluate(() => window.__shown[0].dispatchEvent(new Event('click')));
  await expect(page.getByRole('heading', { level: 2, name: 'Bob Notifier' })).toBeVisible();
  await expect(messageAt(page, 1).locator('.text')).toHaveText('Are you coming tonight?');
  assert.equal((await shown(page))[0].closed, true);
  assert.deepEqual(page.errors, [], 'no script errors');
});

test('a notification closes when its chat is read on another device', async () => {
  await openChat(page, 'Cy Notifier');
  await sendMessage(env.stack, bob, anaBob.id, 'one more thing');
  await expect.poll(() => shown(page), (n) => assert.equal(n.length, 3));
  assert.equal((await shown(page))[2].closed, false);
  await markRead(env.stack, ana, anaBob.id, 2);
  await expect.poll(() => shown(page), (n) => assert.equal(n[2].closed, true));
});

test('turned off, nothing notifies, and the choice stays after a reload', async () => {
  await toggle(page).click();
  await expect(toggle(page)).toHaveAttribute('aria-checked', 'false');
  await sendMessage(env.stack, bob, anaBob.id, 'hello?');
  await expect(chatItem(page, 'Bob Notifier')).toContainText('hello?');
  assert.equal((await shown(page)).length, 3);

  await page.reload();
  await expect(toggle(page)).toHaveAttribute('aria-checked', 'false');
  await toggle(page).click();
  await expect(toggle(page)).toHaveAttribute('aria-checked', 'true');
  await page.reload();
  await expect(toggle(page)).toHaveAttribute('aria-checked', 'true');
  await expect(chatItem(page, 'Bob Notifier')).toBeVisible();
  await sendMessage(env.stack, bob, anaBob.id, 'after the reload');
  await expect.poll(() => shown(page), (n) => assert.deepEqual(n.map((x) => x.body), ['after the reload']));
  assert.deepEqual(page.errors, [], 'no script errors');
  await page.context().close();
});

test('where the browser refuses notifications, the switch says they are blocked', async () => {
  // A profile that has not allowed the site: asked, the browser (headless) refuses.
  const { context, page: cyPage } = await signIn(env, cy);
  await toggle(cyPage).click();
  await expect(toggle(cyPage)).toHaveText('Desktop notifications: blocked');
  await expect(toggle(cyPage)).toHaveAttribute('aria-checked', 'false');
  await expect(toggle(cyPage)).toHaveAttribute('title', /allow them in its site settings/);
  assert.equal(await cyPage.evaluate(() => Notification.permission), 'denied');
  assert.deepEqual(cyPage.errors, [], 'no script errors');
  await context.close();
});
