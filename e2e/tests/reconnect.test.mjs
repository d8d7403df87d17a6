// The connection drops while messages arrive: the client shows it is offline, reconnects, resumes
// from the last seq it has, and ends up with every message exactly once, in order.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { messageTexts, openChat, send, twoInADirectChat } from '../lib/browser.mjs';

/**
 * Runs in the page before its scripts: remembers every WebSocket the client opens, and while
 * `__cutNetwork` is set makes new ones fail (they go to a path with no WebSocket), so the test can
 * hold the client offline for as long as it needs.
 */
function networkSwitch() {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__cutNetwork = false;
  /**
   * While set, the next send's `ack` and the echo of its message (`new_message`) are lost on the
   * way in, in whichever order they come: the protocol does not order them.
   */
  window.__loseNextAck = false;
  let lost = null;
  const dropped = { ack: false, new_message: false };
  const arrives = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type !== 'ack' && frame.type !== 'new_message') return true;
    if (window.__loseNextAck) {
      window.__loseNextAck = false;
      lost = frame.message.clientMsgId;
      dropped.ack = false;
      dropped.new_message = false;
    }
    if (frame.message.clientMsgId !== lost || dropped[frame.type]) return true;
    dropped[frame.type] = true;
    return false;
  };
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(window.__cutNetwork ? String(url).replace(/\/ws$/, '/no-websocket-here') : url, protocols);
      window.__sockets.push(this);
    }

    set onmessage(handler) {
      super.onmessage = (event) => arrives(event) && handler(event);
    }
  };
}

const env = useStackAndBrowser();


test('messages sent while the connection is cut arrive once each after the reconnect', async () => {
  const [ana, bob] = await twoInADirectChat(env, 'Ana Cut', 'Bob Steady', { init: networkSwitch });
  await send(ana.page, 'before the cut');
  await openChat(bob.page, 'Ana Cut');
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText('before the cut');

  // Cut Ana's connection and keep her offline.
  const socketsBefore = await ana.page.evaluate(() => {
    window.__cutNetwork = true;
    window.__sockets.at(-1).close();
    return window.__sockets.length;
  });
  await expect(ana.page.getByRole('status').filter({ hasText: 'You are offline' })).toBeVisible();

  // Bob writes while she is away; Ana writes too (her message waits, shown as sending).
  const whileAway = ['one', 'two', 'three', 'four', 'five'].map((n) => `while away ${n}`);
  for (const text of whileAway) await send(bob.page, text);
  await expect(bob.page.locator('.log .msg').last().locator('.status')).toHaveAttribute('data-state', /sent|delivered/);
  await send(ana.page, 'written offline');
  await expect(ana.page.locator('.log .msg.pending .status')).toHaveAttribute('data-state', 'sending');

  // The network comes back (the browser says so with `online`): Ana reconnects without waiting
  // out the backoff, and resumes.
  await ana.page.evaluate(() => {
    window.__cutNetwork = false;
    window.dispatchEvent(new Event('online'));
  });
  await expect(ana.page.getByRole('status').filter({ hasText: 'You are offline' })).toBeHidden();

  const expected = ['before the cut', ...whileAway, 'written offline'];
  await expect(ana.page.locator('.log .msg .text').last()).toHaveText('written offline');
  await expect(ana.page.locator('.log .msg')).toHaveCount(expected.length);
  assert.deepEqual(await messageTexts(ana.page), expected);
  const seqs = await ana.page.locator('.log .msg').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7], 'every seq once, in order');

  // Ana's queued message was sent once (same clientMsgId on retry) and reached Bob.
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText('written offline');
  assert.deepEqual(await messageTexts(bob.page), expected);
  const reconnected = await ana.page.evaluate(
    (n) => window.__sockets.length > n && window.__sockets.at(-1).readyState === WebSocket.OPEN,
    socketsBefore,
  );
  assert.ok(reconnected, 'the messages came over a new connection');
  await ana.context.close();
  await bob.context.close();
});

test('a send whose ack is lost is retried with the same clientMsgId and stored once', async () => {
  const [ana, bob] = await twoInADirectChat(env, 'Ana Retry', 'Bob Receiver', { init: networkSwitch });

  await ana.page.evaluate(() => {
    window.__loseNextAck = true;
  });
  await send(ana.page, 'did you get this?');
  // No ack: the message stays "sending" until the client's ack timeout, then it is resent.
  await expect(ana.page.locator('.log .msg.pending .status')).toHaveAttribute('data-state', 'sending');
  await expect(ana.page.locator('.log .msg[data-seq] .text'), { timeout: 30_000 }).toHaveText('did you get this?');
  await expect(ana.page.locator('.log .msg')).toHaveCount(1);

  await openChat(bob.page, 'Ana Retry');
  await expect(bob.page.locator('.log .msg .text')).toHaveText('did you get this?');
  const seqs = await bob.page.locator('.log .msg').evaluateAll((els) => els.map((e) => e.dataset.seq));
  assert.deepEqual(seqs, ['1'], 'stored once');
  await ana.context.close();
  await bob.context.close();
});
