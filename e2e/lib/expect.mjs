// Retrying assertions on playwright-core locators, like @playwright/test's `expect`: each one
// re-queries the page until the condition holds or the timeout passes — no fixed sleeps.

import assert from 'node:assert/strict';

const DEFAULT_TIMEOUT = 15_000;
const INTERVALS = [50, 100, 250, 500, 1000];

/** Calls `probe` until it returns without throwing; rethrows its last error at the deadline. */
export async function retry(probe, { timeout = DEFAULT_TIMEOUT } = {}) {
  const deadline = Date.now() + timeout;
  for (let i = 0; ; i++) {
    try {
      return await probe();
    } catch (e) {
      if (Date.now() >= deadline) throw e;
    }
    await new Promise((r) => setTimeout(r, INTERVALS[Math.min(i, INTERVALS.length - 1)]));
  }
}

function matches(actual, expected) {
  return expected instanceof RegExp ? expected.test(actual) : actual === expected;
}

export function expect(locator, { timeout = DEFAULT_TIMEOUT } = {}) {
  const opts = { timeout };
  return {
    toBeVisible: () => locator.first().waitFor({ state: 'visible', timeout }),
    toBeHidden: () => locator.first().waitFor({ state: 'hidden', timeout }),
    toHaveText: (expected) =>
      retry(async () => {
        const text = (await locator.textContent({ timeout: 1000 }))?.trim() ?? '';
        assert.ok(matches(text, expected), `text ${JSON.stringify(text)} should be ${expected}`);
      }, opts),
    toContainText: (expected) =>
      retry(async () => {
        const text = (await locator.textContent({ timeout: 1000 })) ?? '';
        assert.ok(text.includes(expected), `text ${JSON.stringify(text)} should contain ${JSON.stringify(expected)}`);
      }, opts),
    toHaveValue: (expected) =>
      retry(async () => {
        const value = await locator.inputValue({ timeout: 1000 });
        assert.ok(matches(value, expected), `value ${JSON.stringify(value)} should be ${expected}`);
      }, opts),
    toHaveCount: (n) =>
      retry(async () => {
        assert.equal(await locator.count(), n, `count of ${locator}`);
      }, opts),
    toHaveAttribute: (name, expected) =>
      retry(async () => {
        const value = await locator.getAttribute(name, { timeout: 1000 });
        assert.ok(value !== null && matches(value, expected), `${name}=${JSON.stringify(value)} should be ${expected}`);
      }, opts),
  };
}

/** Retries `read()` until `check(value)` passes (an assert inside), returning the value. */
expect.poll = (read, check, opts) =>
  retry(async () => {
    const value = await read();
    check(value);
    return value;
  }, opts);
