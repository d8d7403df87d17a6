// Two people in two browser profiles: register, start a direct chat, talk both ways, see typing
// and read receipts, reload without losing anything, and stay safe against markup in messages.

import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import {
  PHONE, messageTexts, openChat, openClient, register, screenshot, send, startDirectChat, uniqueName,
} from '../lib/browser.mjs';

const env = useStackAndBrowser();
let ana;
let bob;
const anaUser = { username: uniqueName('ana'), displayName: 'Ana Lima' };
const bobUser = { username: uniqueName('bob'), displayName: 'Bob Stone' };


test('the page is served with a strict Content-Security-Policy', async () => {
  const res = await fetch(env.stack.url);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /default-src 'none'/);
  assert.ok(csp.includes(env.stack.usersUrl), `user-service may be called: ${csp}`);
  assert.ok(!csp.includes('unsafe-inline') && !csp.includes('unsafe-eval'));
});

test('its files come with their types and the same policy; config names user-service; paths stay inside web/', async () => {
  const script = await fetch(`${env.stack.url}/web/js/converge-client.js`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get('content-type'), /javascript/);
  assert.equal(script.headers.get('content-security-policy'), (await fetch(env.stack.url)).headers.get('content-security-policy'));
  const config = await (await fetch(`${env.stack.url}/web/config.json`)).json();
  assert.equal(config.userServiceUrl, env.stack.usersUrl);
  assert.equal(config.maxUploadBytes, 10 * 1024 * 1024, 'the upload limit the client checks before uploading');
  // Sent as raw request targets: fetch would normalise the dots away before they left.
  const status = (path) =>
    new Promise((resolve, reject) => {
      http.get(`${env.stack.url}/`, { path }, (res) => resolve(res.resume().statusCode)).on('error', reject);
    });
  for (const path of ['/web/../Cargo.toml', '/web/%2e%2e/Cargo.toml', '/web/..%2fCargo.toml', '/web/js/..%2F..%2FCargo.toml', '/web/.gitignore']) {
    assert.equal(await status(path), 404, path);
  }
  assert.equal(await status('/web/js/app.js'), 200);
  assert.equal((await fetch(env.stack.url, { method: 'HEAD' })).status, 200, 'HEAD / works too');
});

test('two people register and start a direct chat that appears for both at once', async () => {
  ana = await openClient(env.browser, env.stack);
  await screenshot(ana.page, 'login-desktop');
  await register(ana.page, anaUser);
  bob = await openClient(env.browser, env.stack);
  await register(bob.page, bobUser);

  await startDirectChat(ana.page, 'Bob', bobUser.displayName);

  // conversation_created puts it in Bob's list without a reload.
  await expect(bob.page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: /^Ana Lima/ })).toBeVisible();
});

test('they talk both ways; the other sees typing, the sender sees sent then read', async () => {
  await send(ana.page, 'Hi Bob! Are we still on for 3pm?');
  const anaLast = ana.page.locator('.log .msg').last();
  // Bob's client has it (messages_delivered) but he has not opened the chat yet.
  await expect(anaLast.locator('.status')).toHaveAttribute('data-state', 'delivered');
  await expect(anaLast.locator('.status-text')).toHaveText('Delivered');

  await openChat(bob.page, anaUser.displayName);
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText('Hi Bob! Are we still on for 3pm?');
  // Bob has it open at the bottom: Ana sees it read.
  await expect(anaLast.locator('.status')).toHaveAttribute('data-state', 'read');
  await expect(anaLast.locator('.status-text')).toHaveText('Read');

  // Bob types: Ana sees it; he sends with Enter, Shift+Enter makes a line break.
  const box = bob.page.getByRole('textbox', { name: /^Message / });
  await box.pressSequentially('Yes, room 4B');
  await expect(ana.page.locator('.typing')).toHaveText('Bob Stone is typing…');
  await box.press('Shift+Enter');
  await box.pressSequentially('See you there');
  await box.press('Enter');
  await expect(ana.page.locator('.log .msg .text').last()).toHaveText('Yes, room 4B\nSee you there');
  await expect(ana.page.locator('.typing')).toHaveText('');
  assert.deepEqual(await messageTexts(bob.page), ['Hi Bob! Are we still on for 3pm?', 'Yes, room 4B\nSee you there']);

  await screenshot(ana.page, 'conversation-desktop');
  await ana.page.emulateMedia({ colorScheme: 'dark' });
  await screenshot(ana.page, 'conversation-dark');
  await ana.page.emulateMedia({ colorScheme: 'light' });
});

test('the chat list shows the last message and an unread badge; opening the chat marks the first unread', async () => {
  // Bob leaves the chat; Ana writes twice: Bob's list shows 2 unread and the newest text.
  await bob.page.evaluate(() => {
    location.hash = '';
  });
  const item = bob.page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: /^Ana Lima/ });
  await ana.page.getByRole('textbox', { name: /^Message / }).pressSequentially('Bring');
  await expect(item.locator('.chat-preview')).toHaveText('typing…');
  await send(ana.page, 'Bring the slides');
  await send(ana.page, 'And coffee');
  await expect(item.locator('.badge')).toHaveText('2');
  await expect(item.locator('.chat-preview')).toHaveText('And coffee');
  assert.equal(await bob.page.title(), '(2) Converge');
  await screenshot(bob.page, 'chat-list-desktop');
  await openChat(bob.page, anaUser.displayName);
  await expect(item.locator('.badge')).toHaveCount(0);
  await expect(bob.page.locator('#first-unread')).toBeVisible();
});

test('a reload keeps the session and the history', async () => {
  await ana.page.reload();
  await expect(ana.page.getByRole('heading', { level: 2, name: bobUser.displayName })).toBeVisible();
  await expect(ana.page.locator('.log .msg')).toHaveCount(4);
  assert.deepEqual(await messageTexts(ana.page), [
    'Hi Bob! Are we still on for 3pm?',
    'Yes, room 4B\nSee you there',
    'Bring the slides',
    'And coffee',
  ]);
  // And the live connection works after the reload.
  await send(bob.page, 'Done');
  await expect(ana.page.locator('.log .msg .text').last()).toHaveText('Done');
});

test('presence: a dot and the header say whether the other person is online', async () => {
  // Ana's reload above brought `ready.online`, which names Bob.
  const item = ana.page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: /^Bob Stone/ });
  await expect(item.locator('.presence.on')).toBeVisible();
  await expect(ana.page.locator('.conv-subtitle')).toHaveText('Online');
  // Bob's only tab goes away; he comes back.
  const bobUrl = bob.page.url();
  await bob.page.goto('about:blank');
  await expect(item.locator('.presence.off')).toBeVisible();
  await expect(ana.page.locator('.conv-subtitle')).toHaveText('Offline');
  await bob.page.goto(bobUrl);
  await expect(item.locator('.presence.on')).toBeVisible();
  await expect(bob.page.getByRole('heading', { level: 2, name: anaUser.displayName })).toBeVisible();
});

test('markup in a message is shown as text and never runs', async () => {
  const xss = '<img src=x onerror=alert(1)>';
  await send(ana.page, xss);
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText(xss);
  await expect(ana.page.locator('.log .msg .text').last()).toHaveText(xss);
  assert.equal(await bob.page.locator('.log img').count(), 0, 'no element was created from the text');
  assert.deepEqual(bob.page.dialogs, []);
  assert.deepEqual(ana.page.dialogs, []);
});

test('a web address in a message is a link that opens in a new tab; a javascript: one stays text', async () => {
  const text = 'the agenda: https://example.com/agenda?week=49. not this: javascript:alert(1)';
  await send(ana.page, text);
  const last = bob.page.locator('.log .msg .text').last();
  await expect(last).toHaveText(text);
  const links = last.getByRole('link');
  await expect(links).toHaveCount(1);
  await expect(links).toHaveText('https://example.com/agenda?week=49');
  await expect(links).toHaveAttribute('href', 'https://example.com/agenda?week=49');
  await expect(links).toHaveAttribute('target', '_blank');
  await expect(links).toHaveAttribute('rel', 'noopener noreferrer nofollow');
});

test('at 375 px the list and the conversation fit without horizontal scrolling', async () => {
  const phone = await openClient(env.browser, env.stack, { viewport: PHONE });
  await screenshot(phone.page, 'login-phone');
  await phone.page.getByRole('textbox', { name: 'Username or email' }).fill(anaUser.username);
  await phone.page.getByLabel('Password').fill('correct horse battery');
  await phone.page.getByRole('button', { name: 'Sign in' }).click();
  const list = phone.page.getByRole('navigation', { name: 'Your chats' });
  await expect(list.getByRole('button', { name: /^Bob Stone/ })).toBeVisible();
  const noHorizontalScroll = () =>
    phone.page.evaluate(() => document.scrollingElement.scrollWidth <= document.scrollingElement.clientWidth);
  assert.ok(await noHorizontalScroll(), 'chat list fits');
  await screenshot(phone.page, 'chat-list-phone');

  await openChat(phone.page, bobUser.displayName);
  await send(phone.page, 'A long word to test wrapping: ' + 'x'.repeat(300));
  await expect(phone.page.locator('.log .msg .text').last()).toContainText('xxxxxxxx');
  assert.ok(await noHorizontalScroll(), 'conversation fits');
  const logFits = await phone.page.locator('.log').evaluate((el) => el.scrollWidth <= el.clientWidth);
  assert.ok(logFits, 'the message log does not scroll sideways');
  await screenshot(phone.page, 'conversation-phone');

  // On a phone the list and the conversation take turns; Back returns to the list.
  await phone.page.getByRole('button', { name: 'Back to chats' }).click();
  await expect(list.getByRole('button', { name: /^Bob Stone/ })).toBeVisible();
  await phone.context.close();
});

test('sign out returns to the sign-in screen and forgets the session', async () => {
  await ana.page.getByRole('button', { name: 'Sign out' }).click();
  await expect(ana.page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await ana.page.reload();
  await expect(ana.page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  assert.equal(await ana.page.evaluate(() => localStorage.getItem('converge.session')), null);
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], [], 'no script errors');
});
