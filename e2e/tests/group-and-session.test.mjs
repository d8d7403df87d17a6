// A group chat of three, a server error shown next to the message, and a session that expired.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { addParticipants, leaveChat, registerUser } from '../lib/rest.mjs';
import { messageTexts, openChat, openClient, register, send, startDirectChat, twoInADirectChat, uniqueName } from '../lib/browser.mjs';

const env = useStackAndBrowser();


test('a group of three: everyone sees every message with its sender, in order', async () => {
  const people = [];
  for (const name of ['Cara', 'Dan', 'Eve']) {
    const client = await openClient(env.browser, env.stack);
    const username = uniqueName(name.toLowerCase());
    await register(client.page, { username, displayName: `${name} Group` });
    people.push({ ...client, username, name: `${name} Group` });
  }
  const [cara, dan, eve] = people;
  await startDirectChat(cara.page, dan.username, dan.name);
  await send(cara.page, 'Hi Dan');

  await cara.page.getByRole('button', { name: 'New chat' }).click();
  await cara.page.getByRole('tab', { name: 'Group' }).click();
  await cara.page.getByLabel('Group name').fill('Launch team');
  for (const p of [dan, eve]) {
    await cara.page.getByLabel('Find people').fill(p.username);
    await cara.page.getByRole('dialog').getByRole('button', { name: new RegExp(p.name) }).click();
    await expect(cara.page.getByRole('button', { name: `Remove ${p.name}` })).toBeVisible();
  }
  await cara.page.getByRole('button', { name: 'Create group' }).click();
  await expect(cara.page.getByRole('heading', { level: 2, name: 'Launch team' })).toBeVisible();

  await openChat(dan.page, 'Launch team');
  await openChat(eve.page, 'Launch team');
  await send(cara.page, 'Kick-off at 10');
  await expect(dan.page.locator('.log .msg .text').last()).toHaveText('Kick-off at 10');
  await send(dan.page, 'I will be there');
  await expect(eve.page.locator('.log .msg .text').last()).toHaveText('I will be there');
  await send(eve.page, 'Me too');

  const expected = ['Kick-off at 10', 'I will be there', 'Me too'];
  for (const p of people) {
    await expect(p.page.locator('.log .msg')).toHaveCount(3);
    assert.deepEqual(await messageTexts(p.page), expected, `${p.name}'s view`);
  }
  // Others' messages carry their sender's name; Cara's last message is read by both.
  await expect(cara.page.locator('.group.theirs .sender').last()).toHaveText('Eve Group');
  await expect(cara.page.locator('.group.mine .msg .status').last()).toHaveAttribute('data-state', 'read');
  await expect(dan.page.locator('.conv-subtitle')).toContainText('3 members');

  // Members come and go (participant_joined / participant_left): the header follows.
  const finn = await registerUser(env.stack, uniqueName('finn'), 'Finn Late');
  const chatId = await cara.page.evaluate(() => location.hash.slice('#chat/'.length));
  const caraToken = await cara.page.evaluate(() => JSON.parse(localStorage.getItem('converge.session')).accessToken);
  await addParticipants(env.stack, caraToken, chatId, [finn.id]);
  await expect(dan.page.locator('.conv-subtitle')).toContainText('4 members');
  await expect(dan.page.locator('.conv-subtitle')).toContainText('Finn Late');
  await leaveChat(env.stack, finn, chatId);
  await expect(dan.page.locator('.conv-subtitle')).toContainText('3 members');

  // The list is ordered by activity and follows it live: Dan's direct message lifts that chat.
  const titles = () => cara.page.locator('.chat-list .chat-title').allTextContents();
  assert.deepEqual(await titles(), ['Launch team', 'Dan Group']);
  await openChat(dan.page, 'Cara Group');
  await send(dan.page, 'Separate question');
  await expect.poll(titles, (t) => assert.deepEqual(t, ['Dan Group', 'Launch team']));
  for (const p of people) await p.context.close();
});

test('a message the server refuses is marked, with the reason in words, and can be retried', async () => {
  const [a, b] = await twoInADirectChat(env, 'Lena Long', 'Mo Short');

  const box = a.page.getByRole('textbox', { name: /^Message / });
  await box.fill('x'.repeat(4001));
  await expect(a.page.locator('.composer .counter.over')).toHaveText('4001 / 4000');
  await box.press('Enter');
  const failed = a.page.locator('.log .msg.pending.failed');
  await expect(failed.locator('.send-error')).toContainText('Too long to send: messages can have up to 4000 characters.');
  await expect(failed.locator('.status')).toHaveAttribute('data-state', 'failed');
  // Retry resends it (same clientMsgId): refused again, for the same reason, still one bubble.
  const before = await failed.getAttribute('data-client-msg-id');
  await failed.getByRole('button', { name: 'Retry' }).click();
  await expect(failed.locator('.send-error')).toContainText('Too long to send');
  await expect(a.page.locator('.log .msg.pending')).toHaveCount(1);
  assert.equal(await failed.getAttribute('data-client-msg-id'), before);
  // Other messages still go through.
  await send(a.page, 'short one');
  await expect(a.page.locator('.log .msg[data-seq]')).toHaveCount(1);
  await a.context.close();
  await b.context.close();
});

test('a session whose refresh token is no longer valid returns to sign-in with a message', async () => {
  const { context, page } = await openClient(env.browser, env.stack);
  await register(page, { username: uniqueName('exp'), displayName: 'Ex Pired' });
  // The server forgets the session (as after expiry or a revocation elsewhere): spend the access
  // token's time and break the refresh token.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('converge.session'));
    s.expiresAt = Date.now() - 1000;
    s.refreshToken = 'revoked-or-expired';
    localStorage.setItem('converge.session', JSON.stringify(s));
  });
  await page.reload();
  await expect(page.getByText('Your session has expired. Please sign in again.')).toBeVisible();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  await context.close();
});

test('an expiring access token is refreshed silently and the chat keeps working', async () => {
  const { context, page } = await openClient(env.browser, env.stack);
  await register(page, { username: uniqueName('ref'), displayName: 'Rae Fresh' });
  const before = await page.evaluate(() => JSON.parse(localStorage.getItem('converge.session')));
  // Pretend the access token is about to expire: the next use refreshes it first.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('converge.session'));
    s.expiresAt = Date.now() + 1000;
    localStorage.setItem('converge.session', JSON.stringify(s));
  });
  await page.reload();
  await expect(page.getByRole('button', { name: 'New chat' })).toBeVisible();
  const after = await expect.poll(
    () => page.evaluate(() => JSON.parse(localStorage.getItem('converge.session'))),
    (s) => assert.notEqual(s.refreshToken, before.refreshToken, 'the refresh token rotated'),
  );
  // (The access token itself may be byte-identical when issued within the same second.)
  assert.ok(after.expiresAt > Date.now() + 60_000, 'a fresh access token');
  await page.getByRole('button', { name: 'New chat' }).click();
  await page.getByLabel('Find people').fill('Rae');
  await expect(page.getByText('Nobody found for “Rae”.')).toBeVisible();
  await context.close();
});
