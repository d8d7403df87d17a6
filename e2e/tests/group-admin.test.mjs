// Running a group from its "Group info" dialog: the owner and admins rename it, the owner names
// and unnames admins and hands the group over, the owner and admins add and remove members, and
// anyone leaves (an owner who leaves hands the group to an admin, else to the longest-standing
// member). Every change reaches the other members' open pages live — the header, the chat list
// and their own dialog — from the server's frames; a member sees no control they may not use, and
// a refused change says the server's reason.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useStackAndBrowser } from '../lib/fixture.mjs';
import { expect } from '../lib/expect.mjs';
import { focused, openChat, screenshot, signIn, twoInADirectChat, uniqueName } from '../lib/browser.mjs';
import { addParticipants, createGroup, registerUser, setParticipantRole } from '../lib/rest.mjs';

const env = useStackAndBrowser();

/** Someone registered over REST and signed in on a page of their own: {id, token, name, page, context}. */
async function person(displayName) {
  const username = uniqueName(displayName.split(' ')[0].toLowerCase());
  const user = await registerUser(env.stack, username, displayName);
  const { context, page } = await signIn(env, user);
  return { ...user, name: displayName, page, context };
}

/** A group `owner` made over REST with `members`, open on everyone's page. */
async function groupOf(title, owner, members) {
  const chat = await createGroup(env.stack, owner, title, members.map((m) => m.id));
  for (const p of [owner, ...members]) await openChat(p.page, title);
  return chat;
}

const infoDialog = (page) => page.getByRole('dialog', { name: 'Group info' });
const memberList = (page) => infoDialog(page).getByRole('list', { name: 'Members' });
const memberRow = (page, name) => memberList(page).getByRole('listitem').filter({ hasText: name });
const badge = (page, name) => memberRow(page, name).locator('.role-badge');
const confirmDialog = (page) => page.getByRole('alertdialog');
const header = (page) => page.locator('.conv-header .conv-title');
const chatItem = (page, title) => page.getByRole('navigation', { name: 'Your chats' }).getByRole('button', { name: new RegExp(`^${title}`) });
const chatTitles = (page) => page.locator('.chat-list .chat-title').allTextContents();

async function openInfo(page) {
  await page.getByRole('button', { name: 'Group info' }).click();
  await expect(infoDialog(page)).toBeVisible();
}

/** The server's own answer to a rename, asked directly: the reason the page should show. */
async function refusedRename(owner, chatId, title) {
  const res = await fetch(`${env.stack.url}/chats/${chatId}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${owner.token}` },
    body: JSON.stringify({ title }),
  });
  assert.equal(res.status, 422, 'the server refuses the name');
  const { error } = await res.json();
  assert.equal(error.code, 'validation_failed');
  assert.ok(error.fields?.title, 'the refusal names the title');
  return error.fields.title;
}

async function closeAll(...people) {
  for (const p of people) {
    assert.deepEqual(p.page.errors, [], `no script errors on ${p.name}'s page`);
    await p.context.close();
  }
}

test('the owner renames the group: a member sees the new name live in the header and the chat list, and has no rename of their own', async () => {
  const olga = await person('Olga Owner');
  const mia = await person('Mia Member');
  await groupOf('Book club', olga, [mia]);

  // A member sees the group and its people, and nothing to change.
  await openInfo(mia.page);
  await expect(infoDialog(mia.page).locator('.info-title')).toHaveText('Book club');
  await expect(badge(mia.page, 'Olga Owner')).toHaveText('Owner');
  await expect(memberRow(mia.page, 'Mia Member').locator('.member-you')).toHaveText('(you)');
  await expect(badge(mia.page, 'Mia Member')).toHaveCount(0);
  await expect(infoDialog(mia.page).getByRole('button', { name: /^Rename/ })).toHaveCount(0);
  await expect(infoDialog(mia.page).getByRole('button', { name: 'Add members' })).toBeHidden();
  await expect(memberList(mia.page).getByRole('button')).toHaveCount(0);
  // Escape closes it, and focus goes back to the button that opened it.
  await mia.page.keyboard.press('Escape');
  await expect(infoDialog(mia.page)).toBeHidden();
  assert.equal(await focused(mia.page), 'Group info');
  await expect(header(mia.page)).toHaveText('Book club');

  // The owner starts a rename and thinks better of it: Escape leaves the form, not the dialog.
  await openInfo(olga.page);
  await infoDialog(olga.page).getByRole('button', { name: 'Rename the group' }).click();
  const name = infoDialog(olga.page).getByRole('textbox', { name: 'Group name' });
  await expect(name).toHaveValue('Book club');
  await name.fill('Never mind');
  await name.press('Escape');
  await expect(name).toBeHidden();
  await expect(infoDialog(olga.page)).toBeVisible();
  await expect(infoDialog(olga.page).locator('.info-title')).toHaveText('Book club');
  assert.equal(await focused(olga.page), 'Rename the group');

  // Then renames it for real, with Enter.
  await infoDialog(olga.page).getByRole('button', { name: 'Rename the group' }).click();
  await name.fill('  Book club (Fridays) ');
  await name.press('Enter');
  await expect(infoDialog(olga.page).locator('.info-title')).toHaveText('Book club (Fridays)');
  await expect(header(olga.page)).toHaveText('Book club (Fridays)');

  // Mia's page follows, from the conversation_updated frame: the header, the list, the composer's name.
  await expect(header(mia.page)).toHaveText('Book club (Fridays)');
  await expect(chatItem(mia.page, 'Book club \\(Fridays\\)')).toBeVisible();
  assert.deepEqual(await chatTitles(mia.page), ['Book club (Fridays)']);
  await expect(mia.page.getByRole('textbox', { name: 'Message Book club (Fridays)' })).toBeVisible();
  await closeAll(olga, mia);
});

test('a name the server refuses shows its reason, and the group keeps its name', async () => {
  const olga = await person('Olga Strict');
  const mia = await person('Mia Watching');
  const chat = await groupOf('Choir', olga, [mia]);
  const blankReason = await refusedRename(olga, chat.id, '   ');
  const longReason = await refusedRename(olga, chat.id, 'x'.repeat(129));

  await openInfo(olga.page);
  await infoDialog(olga.page).getByRole('button', { name: 'Rename the group' }).click();
  const name = infoDialog(olga.page).getByRole('textbox', { name: 'Group name' });
  const alert = infoDialog(olga.page).locator('.rename-form .form-error');
  const shows = (reason) =>
    expect.poll(
      async () => ((await alert.textContent()) ?? '').toLowerCase(),
      (text) => assert.ok(text.includes(reason.toLowerCase()), `${JSON.stringify(text)} gives the server's reason ${JSON.stringify(reason)}`),
    );

  await name.fill('   ');
  await name.press('Enter');
  await shows(blankReason);
  await expect(name).toHaveAttribute('aria-invalid', 'true');
  // Still renaming, with what was typed left to fix.
  await expect(name).toHaveValue('   ');
  await name.fill('x'.repeat(129));
  await name.press('Enter');
  await shows(longReason);

  await name.press('Escape');
  await expect(infoDialog(olga.page).locator('.info-title')).toHaveText('Choir');
  for (const p of [olga, mia]) await expect(header(p.page)).toHaveText('Choir');
  await closeAll(olga, mia);
});

test('the owner makes a member an admin: she sees her badge and may rename and add people; made a member again, she may not', async () => {
  const olga = await person('Olga Boss');
  const bea = await person('Bea Helper');
  await groupOf('Garden', olga, [bea]);
  await openInfo(olga.page);
  await openInfo(bea.page);
  await expect(infoDialog(bea.page).getByRole('button', { name: 'Rename the group' })).toHaveCount(0);

  // By keyboard: the action, then Enter.
  await memberRow(olga.page, 'Bea Helper').getByRole('button', { name: 'Make admin: Bea Helper' }).focus();
  await olga.page.keyboard.press('Enter');
  await expect(badge(olga.page, 'Bea Helper')).toHaveText('Admin');
  await expect(infoDialog(olga.page).locator('.info-notice')).toHaveText('Bea Helper is now an admin.');
  // Focus stays with Bea's row: the button is now the way back.
  await expect.poll(() => focused(olga.page), (f) => assert.equal(f, 'Remove as admin: Bea Helper'));

  // Bea's own open dialog follows (participant_role_changed): her badge, and the admin's controls.
  await expect(badge(bea.page, 'Bea Helper')).toHaveText('Admin');
  await expect(infoDialog(bea.page).getByRole('button', { name: 'Add members' })).toBeVisible();
  // An admin removes members but does not name admins or owners, and never removes the owner.
  await expect(memberRow(bea.page, 'Olga Boss').getByRole('button')).toHaveCount(0);
  await infoDialog(bea.page).getByRole('button', { name: 'Rename the group' }).click();
  await infoDialog(bea.page).getByRole('textbox', { name: 'Group name' }).fill('Community garden');
  await infoDialog(bea.page).getByRole('textbox', { name: 'Group name' }).press('Enter');
  await expect(header(olga.page)).toHaveText('Community garden');
  await expect(infoDialog(olga.page).locator('.info-title')).toHaveText('Community garden');
  await screenshot(olga.page, 'group-info');

  await memberRow(olga.page, 'Bea Helper').getByRole('button', { name: 'Remove as admin: Bea Helper' }).click();
  await expect(badge(olga.page, 'Bea Helper')).toHaveCount(0);
  await expect(badge(bea.page, 'Bea Helper')).toHaveCount(0);
  await expect(infoDialog(bea.page).getByRole('button', { name: 'Rename the group' })).toHaveCount(0);
  await expect(infoDialog(bea.page).getByRole('button', { name: 'Add members' })).toBeHidden();
  await closeAll(olga, bea);
});

test('the owner adds someone found by search: the group appears in their chat list live, and in the others’ member lists', async () => {
  const olga = await person('Olga Host');
  const mia = await person('Mia Guest');
  const nick = await person('Nick Newcomer');
  await groupOf('Film night', olga, [mia]);
  assert.deepEqual(await chatTitles(nick.page), [], 'Nick is in no chat yet');
  await openInfo(mia.page);

  await openInfo(olga.page);
  await infoDialog(olga.page).getByRole('button', { name: 'Add members' }).click();
  const search = infoDialog(olga.page).getByRole('searchbox', { name: 'Find people to add' });
  await expect(search).toBeVisible();
  assert.equal(await olga.page.evaluate(() => document.activeElement.id), 'add-search');
  // Members are not offered again.
  await search.fill('Mia Guest');
  await expect(infoDialog(olga.page).locator('.user-results')).toContainText('Nobody found for “Mia Guest”.');
  await search.fill(nick.username);
  await infoDialog(olga.page).locator('.user-results').getByRole('button', { name: /Nick Newcomer/ }).click();

  await expect(memberRow(olga.page, 'Nick Newcomer')).toBeVisible();
  await expect(infoDialog(olga.page).locator('.info-notice')).toHaveText('Nick Newcomer was added to the group.');
  await expect(infoDialog(olga.page).locator('.user-results')).toContainText('Nobody found');
  await expect(chatItem(nick.page, 'Film night')).toBeVisible();
  await expect(memberRow(mia.page, 'Nick Newcomer')).toBeVisible();
  await expect(mia.page.locator('.conv-subtitle')).toContainText('3 members');

  // Every control of the dialog, the search and its results included, has a name to be said.
  const pia = await registerUser(env.stack, uniqueName('pia'), 'Pia Outsider');
  await search.fill(pia.username);
  await expect(infoDialog(olga.page).locator('.user-results').getByRole('button', { name: /Pia Outsider/ })).toBeVisible();
  const unnamed = await infoDialog(olga.page).evaluate((dialog) =>
    [...dialog.querySelectorAll('button, input, ul')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())))
      .map((el) => el.outerHTML.slice(0, 80)),
  );
  assert.deepEqual(unnamed, []);

  // Nick, in it now, sees the whole group.
  await openChat(nick.page, 'Film night');
  await openInfo(nick.page);
  await expect(memberList(nick.page).getByRole('listitem')).toHaveCount(3);
  await expect(badge(nick.page, 'Olga Host')).toHaveText('Owner');
  await closeAll(olga, mia, nick);
});

test('an admin removes a member after confirming: the chat leaves the removed member’s page, and the others’ lists follow', async () => {
  const olga = await person('Olga Chair');
  const ada = await person('Ada Admin');
  const rob = await person('Rob Removed');
  const chat = await groupOf('Committee', olga, [ada, rob]);
  await setParticipantRole(env.stack, olga, chat.id, ada.id, 'admin');
  await openInfo(olga.page);
  await openInfo(ada.page);
  await expect(badge(ada.page, 'Ada Admin')).toHaveText('Admin');

  // Ada may remove Rob, and not the owner; she names no admins.
  await expect(memberRow(ada.page, 'Olga Chair').getByRole('button')).toHaveCount(0);
  await expect(memberRow(ada.page, 'Rob Removed').getByRole('button', { name: /^Make/ })).toHaveCount(0);
  const remove = memberRow(ada.page, 'Rob Removed').getByRole('button', { name: 'Remove from group: Rob Removed' });

  // Cancel removes nobody, and focus goes back to the button.
  await remove.click();
  await expect(confirmDialog(ada.page)).toContainText('Remove Rob Removed from the group?');
  await confirmDialog(ada.page).getByRole('button', { name: 'Cancel' }).click();
  await expect(confirmDialog(ada.page)).toBeHidden();
  assert.equal(await focused(ada.page), 'Remove from group: Rob Removed');
  await expect(memberList(olga.page).getByRole('listitem')).toHaveCount(3);

  await remove.click();
  await confirmDialog(ada.page).getByRole('button', { name: 'Remove' }).click();
  await expect(confirmDialog(ada.page)).toBeHidden();
  await expect(memberRow(ada.page, 'Rob Removed')).toHaveCount(0);
  await expect(infoDialog(ada.page).locator('.info-notice')).toHaveText('Rob Removed was removed from the group.');

  // Rob had it open: it goes from his list and his screen (conversation_left).
  await expect(chatItem(rob.page, 'Committee')).toHaveCount(0);
  await expect(rob.page.locator('.conversation')).toHaveCount(0);
  await expect(rob.page.getByText('Pick a chat on the left, or start a new one.')).toBeVisible();
  // The owner's open dialog and header follow (participant_left).
  await expect(memberRow(olga.page, 'Rob Removed')).toHaveCount(0);
  await expect(memberList(olga.page).getByRole('listitem')).toHaveCount(2);
  await expect(olga.page.locator('.conv-subtitle')).toContainText('2 members');
  await closeAll(olga, ada, rob);
});

test('the owner hands the group over after confirming: the roles swap on both pages', async () => {
  const olga = await person('Olga Former');
  const hal = await person('Hal Heir');
  await groupOf('Orchestra', olga, [hal]);
  await openInfo(olga.page);
  await openInfo(hal.page);

  await memberRow(olga.page, 'Hal Heir').getByRole('button', { name: 'Make owner: Hal Heir' }).click();
  await expect(confirmDialog(olga.page)).toContainText('Make Hal Heir the owner?');
  await expect(confirmDialog(olga.page)).toContainText('You will become an admin');
  await confirmDialog(olga.page).getByRole('button', { name: 'Make owner' }).click();
  await expect(confirmDialog(olga.page)).toBeHidden();

  for (const page of [olga.page, hal.page]) {
    await expect(badge(page, 'Hal Heir')).toHaveText('Owner');
    await expect(badge(page, 'Olga Former')).toHaveText('Admin');
  }
  // Olga, an admin now, still removes members but names nobody; Hal has the owner's controls.
  await expect(memberRow(olga.page, 'Hal Heir').getByRole('button')).toHaveCount(0);
  await expect(infoDialog(olga.page).getByRole('button', { name: 'Rename the group' })).toBeVisible();
  await expect(memberRow(hal.page, 'Olga Former').getByRole('button', { name: 'Remove as admin: Olga Former' })).toBeVisible();
  await expect(memberRow(hal.page, 'Olga Former').getByRole('button', { name: 'Make owner: Olga Former' })).toBeVisible();
  // The owner is listed first.
  await expect(memberList(hal.page).getByRole('listitem').first()).toContainText('Hal Heir');
  await closeAll(olga, hal);
});

test('the owner leaves after confirming: the longest-standing member becomes the owner on the others’ pages', async () => {
  const olga = await person('Olga Leaving');
  const mia = await person('Mia Longest');
  const nick = await person('Nick Later');
  const chat = await groupOf('Reading group', olga, [mia]);
  // Nick joins after Mia: Mia has been in it longest.
  await addParticipants(env.stack, olga.token, chat.id, [nick.id]);
  await openChat(nick.page, 'Reading group');
  await openInfo(mia.page);
  await openInfo(nick.page);
  await expect(memberList(nick.page).getByRole('listitem')).toHaveCount(3);

  await openInfo(olga.page);
  await infoDialog(olga.page).getByRole('button', { name: 'Leave group' }).click();
  await expect(confirmDialog(olga.page)).toContainText('Leave “Reading group”?');
  await expect(confirmDialog(olga.page)).toContainText('Mia Longest, its longest-standing member, will become its owner.');
  await confirmDialog(olga.page).getByRole('button', { name: 'Leave' }).click();

  // Gone from Olga's page: the dialogs, the conversation, the list.
  await expect(confirmDialog(olga.page)).toBeHidden();
  await expect(infoDialog(olga.page)).toBeHidden();
  await expect(chatItem(olga.page, 'Reading group')).toHaveCount(0);
  await expect(olga.page.locator('.conversation')).toHaveCount(0);

  for (const page of [mia.page, nick.page]) {
    await expect(memberRow(page, 'Olga Leaving')).toHaveCount(0);
    await expect(badge(page, 'Mia Longest')).toHaveText('Owner');
    await expect(page.locator('.conv-subtitle')).toContainText('2 members');
  }
  // Mia, the owner now, has the owner's controls.
  await expect(memberRow(mia.page, 'Nick Later').getByRole('button', { name: 'Make admin: Nick Later' })).toBeVisible();
  await expect(memberRow(nick.page, 'Mia Longest').getByRole('button')).toHaveCount(0);
  await closeAll(olga, mia, nick);
});

test('an owner who leaves a group with an admin is told the admin inherits it, and the admin does', async () => {
  const olga = await person('Olga Going');
  const mia = await person('Mia First');
  const ada = await person('Ada Deputy');
  const chat = await groupOf('Band', olga, [mia]);
  // Ada joined after Mia, but she is an admin: the server hands the group to an admin first.
  await addParticipants(env.stack, olga.token, chat.id, [ada.id]);
  await setParticipantRole(env.stack, olga, chat.id, ada.id, 'admin');
  await openInfo(olga.page);
  await expect(badge(olga.page, 'Ada Deputy')).toHaveText('Admin');

  await infoDialog(olga.page).getByRole('button', { name: 'Leave group' }).click();
  await expect(confirmDialog(olga.page)).toContainText('Ada Deputy, its longest-standing admin, will become its owner.');
  await confirmDialog(olga.page).getByRole('button', { name: 'Leave' }).click();
  await expect(chatItem(olga.page, 'Band')).toHaveCount(0);

  await openInfo(mia.page);
  await expect(badge(mia.page, 'Ada Deputy')).toHaveText('Owner');
  await expect(badge(mia.page, 'Mia First')).toHaveCount(0);
  await closeAll(olga, mia, ada);
});

test('a role given while the newcomer’s details are still on their way is not lost', async () => {
  const olga = await person('Olga Waiting');
  const mia = await person('Mia Member');
  const ada = await person('Ada Newcomer');
  const chat = await groupOf('Quartet', olga, [mia]);
  await openInfo(olga.page);
  // Olga's page reads the chat when Ada joins; that answer is taken at once and held back, so it
  // arrives after the role change it does not know of.
  let held;
  const released = new Promise((resolve) => (held = resolve));
  let firstRead = true;
  const chatUrl = new RegExp(`/chats/${chat.id}$`);
  const stale = olga.page.waitForEvent('requestfinished', (r) => chatUrl.test(r.url()));
  await olga.page.route(chatUrl, async (route) => {
    if (route.request().method() !== 'GET' || !firstRead) return route.continue();
    firstRead = false;
    const response = await route.fetch();
    await released;
    await route.fulfill({ response });
  });
  await addParticipants(env.stack, olga.token, chat.id, [ada.id]);
  await expect.poll(() => firstRead, (f) => assert.equal(f, false, 'the page asked for the chat'));
  await setParticipantRole(env.stack, olga, chat.id, ada.id, 'admin');
  await expect(badge(olga.page, 'Ada Newcomer')).toHaveText('Admin');
  // The stale answer comes last, and changes nothing.
  held();
  await stale;
  await expect(badge(olga.page, 'Ada Newcomer')).toHaveText('Admin');
  await olga.page.unroute(chatUrl);
  await closeAll(olga, mia, ada);
});

test('a direct chat’s info shows the other person, with nothing to change', async () => {
  const [ivy, jon] = await twoInADirectChat(env, 'Ivy Direct', 'Jon Direct');
  await ivy.page.getByRole('button', { name: 'Chat info' }).click();
  const dialog = ivy.page.getByRole('dialog', { name: 'Chat info' });
  await expect(dialog.locator('.info-title')).toHaveText('Jon Direct');
  await expect(dialog.locator('.info-sub')).toHaveText('Online');
  await expect(dialog.getByRole('listitem').filter({ hasText: 'Jon Direct' })).toBeVisible();
  await expect(dialog.locator('.role-badge')).toHaveCount(0);
  // Nothing but Close: no rename, no members to manage, no leaving a direct chat.
  assert.deepEqual(await dialog.getByRole('button').allTextContents(), ['×']);
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(dialog).toBeHidden();
  assert.equal(await focused(ivy.page), 'Chat info');
  await closeAll({ ...ivy, name: 'Ivy' }, { ...jon, name: 'Jon' });
});
