// One stack and one browser per test file: started before its first test, stopped after its last.

import { after, before } from 'node:test';
import { launch } from './browser.mjs';
import { startStack } from './stack.mjs';

/** Registers the hooks; the returned object has `stack` and `browser` once the tests run. */
export function useStackAndBrowser(env = {}) {
  const fixture = { stack: null, browser: null };
  before(async () => {
    fixture.stack = await startStack(env);
    fixture.browser = await launch();
  });
  after(async () => {
    await fixture.browser?.close();
    await fixture.stack?.stop();
  });
  return fixture;
}
