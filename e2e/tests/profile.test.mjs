// Your name and picture, as others see them: changed in the profile dialog, they reach the people
// you chat with at once, without anyone reloading.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { openChat, twoInADirectChat } from '../lib/browser.mjs';

const env = useStackAndBrowser();

test('a new name and picture reach the other side of a chat live, and stay after a reload', async () => {
  const [ana, bob] = await twoInADirectChat(env, 'Ana Before', 'Bob Watching');
  await openChat(bob.page, 'Ana Before');
  const chatsOf = (page) => page.getByRole('navigation', { name: 'Your chats' });

  await ana.page.getByRole('button', { name: 'Edit your profile' }).click();
  const dialog = ana.page.getByRole('dialog', { name: 'Your profile' });
  await dialog.getByLabel('Your name').fill('   ');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog.getByRole('alert')).toHaveText('Your name cannot be empty.');
  await dialog.getByLabel('Your name').fill('Ana After');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog).toBeHidden();
  await expect(ana.page.locator('.side-me .me-name')).toHaveText('Ana After');

  // Bob's open conversation and his chat list follow, with no reload.
  await expect(bob.page.getByRole('heading', { level: 2, name: 'Ana After' })).toBeVisible();
  await expect(chatsOf(bob.page).getByRole('button', { name: /^Ana After/ })).toBeVisible();
  assert.equal(await chatsOf(bob.page).getByRole('button', { name: /^Ana Before/ }).count(), 0);

  // A picture: a bad link is refused with the reason, a good one reaches Bob's chat list live.
  await ana.page.getByRole('button', { name: 'Edit your profile' }).click();
  await expect(dialog).toBeVisible();
  assert.equal(await dialog.getByLabel('Your name').inputValue(), 'Ana After', 'the dialog opens on the current name');
  await dialog.getByLabel(/^Picture/).fill('not a link');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog.getByRole('alert')).toContainText('The picture link');
  const picture = 'https://example.com/ana-after.png';
  await dialog.getByLabel(/^Picture/).fill(picture);
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog).toBeHidden();
  await expect(chatsOf(bob.page).locator('img.avatar-img')).toHaveAttribute('src', picture);

  // Stored, not only told: a fresh load shows it too, on both sides.
  await bob.page.reload();
  await expect(chatsOf(bob.page).getByRole('button', { name: /^Ana After/ })).toBeVisible();
  await expect(chatsOf(bob.page).locator('img.avatar-img')).toHaveAttribute('src', picture);
  await ana.page.reload();
  await expect(ana.page.locator('.side-me .me-name')).toHaveText('Ana After');
  assert.deepEqual([...ana.page.errors, ...bob.page.errors], []);
  await ana.context.close();
  await bob.context.close();
});
