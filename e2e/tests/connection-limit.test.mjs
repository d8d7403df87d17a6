// An account may hold only MAX_CONNECTIONS_PER_USER connections on an instance: a tab past it is
// turned away (close 4029), says why rather than only "offline", and gets in once another closes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { openClient, register, uniqueName } from '../lib/browser.mjs';

const env = useStackAndBrowser({ MAX_CONNECTIONS_PER_USER: '1' });

const banner = (page) => page.getByRole('status').filter({ hasText: 'You are offline' });

test('a tab past the connection limit says the account has too many open, and connects once one closes', async () => {
  const first = await openClient(env.browser, env.stack);
  await register(first.page, { username: uniqueName('tabs'), displayName: 'Tess Tabs' });
  await expect(banner(first.page)).toBeHidden();

  // A second tab of the same session (the same browser profile) is one connection too many.
  const second = await first.context.newPage();
  second.errors = [];
  second.on('pageerror', (e) => second.errors.push(String(e)));
  await second.goto(env.stack.url);
  await expect(second.getByRole('button', { name: 'New chat' })).toBeVisible();
  await expect(banner(second)).toContainText('your account has too many open tabs or devices; close one.');
  await expect(banner(first.page)).toBeHidden();

  // The first tab closes: the second gets its place.
  await first.page.close();
  await expect
    .poll(
      async () => {
        const retry = banner(second).getByRole('button', { name: 'Retry now' });
        if (await retry.isVisible()) await retry.click().catch(() => {});
        return banner(second).isVisible();
      },
      (visible) => assert.equal(visible, false, 'the second tab is online'),
      { timeout: 30_000 },
    );
  assert.deepEqual([...first.page.errors, ...second.errors], [], 'no script errors');
  await first.context.close();
});
