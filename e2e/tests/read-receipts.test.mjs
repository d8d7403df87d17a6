// Read receipts in groups above READ_RECEIPTS_MAX_CHAT_MEMBERS, whose members' reads the server
// does not send to the others: the client shows no read count there, not one that never moves.

import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { createGroup, markRead, registerUser, sendMessage } from '../lib/rest.mjs';
import { openChat, openClient, register, uniqueName } from '../lib/browser.mjs';

const env = useStackAndBrowser({ READ_RECEIPTS_MAX_CHAT_MEMBERS: '3' });

test('in a group above the read-receipt limit a message shows no read count; below it, it does, and names the readers', async () => {
  const { context, page } = await openClient(env.browser, env.stack);
  const username = uniqueName('cara');
  await register(page, { username, displayName: 'Cara Counts' });
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('converge.session')).accessToken);
  const userId = await page.evaluate(() => JSON.parse(localStorage.getItem('converge.session')).user.id);
  const cara = { id: userId, token };
  const [dan, eve, finn] = await Promise.all(
    ['dan', 'eve', 'finn'].map((name) => registerUser(env.stack, uniqueName(name), `${name} Reader`)),
  );
  const small = await createGroup(env.stack, cara, 'Small team', [dan.id, eve.id]);
  const big = await createGroup(env.stack, cara, 'Big team', [dan.id, eve.id, finn.id]);
  for (const chat of [small, big]) {
    const message = await sendMessage(env.stack, cara, chat.id, `Hello ${chat.title}`);
    await markRead(env.stack, dan, chat.id, message.seq);
  }

  // Loaded after Dan read: the small group says so and would follow later reads live; the big one
  // would not, so it shows only whether the message is stored and delivered.
  await page.reload();
  const status = page.locator('.group.mine .msg .status').last();
  await openChat(page, 'Small team');
  await expect(status).toHaveAttribute('aria-label', 'Read by 1 of 2');
  // Who, on pointing at it.
  await expect(status).toHaveAttribute('title', 'Read by dan Reader; not yet by eve Reader');
  await markRead(env.stack, eve, small.id, 1);
  await expect(status).toHaveAttribute('aria-label', 'Read');
  await expect(status).toHaveAttribute('title', 'Read by dan Reader and eve Reader');
  await openChat(page, 'Big team');
  await expect(page.locator('.log .msg .text').last()).toHaveText('Hello Big team');
  await expect(status).toHaveAttribute('aria-label', 'Sent');
  await expect(status).toHaveAttribute('title', 'Sent. Read receipts are not shared in groups of more than 3 members.');
  await context.close();
});
