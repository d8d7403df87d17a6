// Access tokens that last seconds: the server closes a connection whose token expires, so the
// client renews the token on the open connection before that, and the chat never notices.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect, retry } from '../lib/expect.mjs';
import { openChat, send, twoInADirectChat } from '../lib/browser.mjs';

/** Runs in the page before its scripts: keeps every WebSocket and the token deadlines it is told. */
function watchSockets() {
  const Native = window.WebSocket;
  window.__sockets = [];
  window.__deadlines = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      window.__sockets.push(this);
      this.addEventListener('message', (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === 'ready' || frame.type === 'authenticated') window.__deadlines.push(frame.tokenExpiresAt);
      });
    }
  };
}

// Every token lasts 6 s (11 s with the verifiers' leeway): a connection would be closed within
// seconds without renewals.
const env = useStackAndBrowser({ ACCESS_TOKEN_TTL_SECS: '6' });

test('a chat stays on one connection while its access tokens expire one after another', async () => {
  const [ana, bob] = await twoInADirectChat(env, 'Ana Renewing', 'Bob Renewing', { init: watchSockets });
  const [firstDeadline] = await retry(async () => {
    const deadlines = await ana.page.evaluate(() => window.__deadlines);
    assert.ok(deadlines.length > 0, 'ready has told the token deadline');
    return deadlines;
  });

  // Past the first token's deadline, and renewed since: the connection outlived its first token.
  const deadlines = await retry(
    async () => {
      const seen = await ana.page.evaluate(() => window.__deadlines);
      assert.ok(Date.now() > Date.parse(firstDeadline) + 1000, `still before ${firstDeadline}`);
      assert.ok(seen.length >= 3, `renewals so far: ${JSON.stringify(seen)}`);
      return seen;
    },
    { timeout: 40_000 },
  );
  const times = deadlines.map((d) => Date.parse(d));
  assert.ok(times.every((t, i) => i === 0 || t > times[i - 1]), `each renewal moves the deadline: ${deadlines}`);
  const sockets = await ana.page.evaluate(() => window.__sockets.map((s) => s.readyState));
  assert.deepEqual(sockets, [1], 'one connection, still open (readyState OPEN)');

  await send(ana.page, 'written on a renewed token');
  await openChat(bob.page, 'Ana Renewing');
  await expect(bob.page.locator('.log .msg .text').last()).toHaveText('written on a renewed token');
  await expect(ana.page.getByRole('status').filter({ hasText: 'You are offline' })).toBeHidden();
  assert.deepEqual(ana.page.errors, []);
  await ana.context.close();
  await bob.context.close();
});
