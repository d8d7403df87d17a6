// Your name and picture, as others see them: changed in the profile dialog, they reach the people
// you chat with at once, without anyone reloading. The same dialog changes the password, signs out
// on every device, and deactivates the account, each of the last two asked again first.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { openChat, openClient, register, signIn, twoInADirectChat, uniqueName } from '../lib/browser.mjs';

// The services as separate processes, as deployed: a session ended at user-service reaches
// chat-service over Redis (scripts/test has it running; TEST_REDIS_URL names it).
const env = useStackAndBrowser({
  REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  REDIS_PREFIX: `e2e${Date.now().toString(36)}:`,
});

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

/** POSTs JSON to user-service; answers {status, body}. */
async function postUsers(path, body) {
  const res = await fetch(`${env.stack.usersUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

test('a new password keeps this session, signs the other devices out, and is the one that signs in', async () => {
  const [oldPassword, newPassword] = ['correct horse battery', 'purple monkey dishwasher'];
  const username = uniqueName('pat');
  const { context, page } = await openClient(env.browser, env.stack);
  await register(page, { username, displayName: 'Pat Secret' });
  const otherDevice = await postUsers('/auth/login', { login: username, password: oldPassword });
  assert.equal(otherDevice.status, 200);

  await page.getByRole('button', { name: 'Edit your profile' }).click();
  const dialog = page.getByRole('dialog', { name: 'Your profile' });
  const form = dialog.getByRole('form', { name: 'Change password' });
  const changeTo = async (current, next) => {
    await form.getByLabel('Current password').fill(current);
    await form.getByLabel('New password').fill(next);
    await form.getByRole('button', { name: 'Change password' }).click();
  };
  await changeTo('not my password', newPassword);
  await expect(form.getByRole('alert')).toHaveText('Your current password is not right.');
  await changeTo(oldPassword, 'short');
  await expect(form.getByRole('alert')).toHaveText('The new password must be 8 to 128 characters.');
  await changeTo(oldPassword, newPassword);
  await expect(form.getByRole('status')).toHaveText('Your password is changed. Your other devices are signed out.');
  assert.equal(await form.getByLabel('Current password').inputValue(), '', 'the fields are emptied');

  // The other device's session is over; this one goes on, across a reload.
  const refreshed = await postUsers('/auth/refresh', { refreshToken: otherDevice.body.refreshToken });
  assert.equal(refreshed.status, 401);
  await page.reload();
  await expect(page.locator('.side-me .me-name')).toHaveText('Pat Secret');

  // Only the new password signs in.
  await page.getByRole('button', { name: 'Sign out' }).click();
  const signIn = async (password) => {
    await page.getByRole('textbox', { name: 'Username or email' }).fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };
  await signIn(oldPassword);
  await expect(page.getByRole('alert')).toHaveText('That username or password is not right.');
  await signIn(newPassword);
  await expect(page.getByRole('button', { name: 'New chat' })).toBeVisible();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('"Sign out everywhere" asks first, then ends this session and every other device’s at once', async () => {
  const username = uniqueName('sam');
  const { context, page } = await openClient(env.browser, env.stack);
  await register(page, { username, displayName: 'Sam Everywhere' });
  const otherDevice = await postUsers('/auth/login', { login: username, password: 'correct horse battery' });
  assert.equal(otherDevice.status, 200);
  // A second browser signed in too, its chat list open over the WebSocket.
  const laptop = await signIn(env, { username });
  await expect(laptop.page.getByRole('button', { name: 'Sign out' })).toBeVisible();
  const mine = await page.evaluate(() => JSON.parse(localStorage.getItem('converge.session')).refreshToken);

  await page.getByRole('button', { name: 'Edit your profile' }).click();
  const dialog = page.getByRole('dialog', { name: 'Your profile' });
  const confirm = page.getByRole('alertdialog', { name: 'Sign out on all your devices?' });
  // Cancel changes nothing.
  await dialog.getByRole('button', { name: 'Sign out everywhere' }).click();
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await expect(confirm).toBeHidden();
  assert.equal((await postUsers('/auth/refresh', { refreshToken: otherDevice.body.refreshToken })).status, 200, 'still signed in');

  await dialog.getByRole('button', { name: 'Sign out everywhere' }).click();
  await confirm.getByRole('button', { name: 'Sign out everywhere' }).click();
  await expect(page.getByText('You have signed out on all your devices.')).toBeVisible();
  // The other browser is signed out too, now, not when its access token expires, and told why.
  await expect(laptop.page.getByRole('textbox', { name: 'Username or email' })).toBeVisible();
  await expect(laptop.page.getByText('your session was ended from another device', { exact: false })).toBeVisible();
  assert.deepEqual(laptop.page.errors, []);
  await laptop.context.close();
  await expect(page.getByRole('textbox', { name: 'Username or email' })).toBeVisible();
  assert.equal(await page.evaluate(() => localStorage.getItem('converge.session')), null, 'forgotten here');
  // Neither this session nor the other device can go on: their refresh tokens are refused.
  assert.equal((await postUsers('/auth/refresh', { refreshToken: mine })).status, 401);
  assert.equal((await postUsers('/auth/refresh', { refreshToken: otherDevice.body.refreshToken })).status, 401);
  // Signing in again works: the account is fine.
  await page.getByRole('textbox', { name: 'Username or email' }).fill(username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: 'New chat' })).toBeVisible();
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('deactivating the account asks first, signs out, and the account cannot sign in again', async () => {
  const username = uniqueName('dex');
  const { context, page } = await openClient(env.browser, env.stack);
  await register(page, { username, displayName: 'Dex Leaving' });

  await page.getByRole('button', { name: 'Edit your profile' }).click();
  const dialog = page.getByRole('dialog', { name: 'Your profile' });
  const confirm = page.getByRole('alertdialog', { name: 'Deactivate your account?' });
  await dialog.getByRole('button', { name: 'Deactivate account' }).click();
  await expect(confirm).toContainText('This cannot be undone.');
  await page.keyboard.press('Escape');
  await expect(confirm).toBeHidden();
  await expect(dialog).toBeVisible();

  await dialog.getByRole('button', { name: 'Deactivate account' }).click();
  await confirm.getByRole('button', { name: 'Deactivate' }).click();
  await expect(page.getByText('Your account is deactivated: it can no longer sign in.')).toBeVisible();
  await page.getByRole('textbox', { name: 'Username or email' }).fill(username);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('This account has been deactivated.');
  const login = await postUsers('/auth/login', { login: username, password: 'correct horse battery' });
  assert.equal(login.status, 403);
  assert.equal(login.body.error.code, 'account_deactivated');
  assert.deepEqual(page.errors, []);
  await context.close();
});
