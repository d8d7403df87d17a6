// The real Converge stack for browser tests: user-service and chat-service started as their own
// processes (the binaries `cargo build` made), on free ports, on SQLite in a temporary directory.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where the service binaries are: CONVERGE_BIN_DIR, else the workspace's target/debug. */
const binDir = process.env.CONVERGE_BIN_DIR || join(repoRoot, 'target', 'debug');

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

async function waitForHealth(url, child, name, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${child.output}`);
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100)); // polling a process we cannot get an event from
  }
  throw new Error(`${name} did not answer ${url}/health in time:\n${child.output}`);
}

function run(name, env, cwd) {
  const child = spawn(join(binDir, name), [], {
    cwd,
    env: { PATH: process.env.PATH, RUST_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return child;
}

/**
 * Starts both services. `env` adds settings for both (e.g. ACCESS_TOKEN_TTL_SECS).
 * @returns {Promise<{url: string, usersUrl: string, stop: () => Promise<void>}>}
 */
export async function startStack(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'converge-e2e-'));
  const [usersPort, chatPort] = [await freePort(), await freePort()];
  const usersUrl = `http://127.0.0.1:${usersPort}`;
  const url = `http://127.0.0.1:${chatPort}`;
  const common = { HOST: '127.0.0.1', DATA_DIR: dir, ...env };
  const users = run('user-service', {
    ...common,
    USER_SERVICE_PORT: String(usersPort),
    CORS_ALLOWED_ORIGINS: url,
    AUTH_RATE_LIMIT_PER_IP: '1000',
    AUTH_RATE_LIMIT_PER_ACCOUNT: '1000',
  }, dir);
  const children = [users];
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise((done) => {
            if (c.exitCode !== null) return done();
            c.once('exit', done);
            c.kill('SIGTERM');
            setTimeout(() => c.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForHealth(usersUrl, users, 'user-service');
    const chat = run('chat-service', {
      ...common,
      CHAT_SERVICE_PORT: String(chatPort),
      USER_SERVICE_URL: usersUrl,
      WEB_DIR: join(repoRoot, 'web'),
    }, dir);
    children.push(chat);
    await waitForHealth(url, chat, 'chat-service');
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, usersUrl, stop };
}
