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

/**
 * Waits for the service's "listening" log line (an event, not a poll), then checks /health once.
 * Fails at once if the process exits first.
 */
async function waitForListening(url, child, name, timeoutMs = 60_000) {
  await new Promise((resolveUp, reject) => {
    const timer = setTimeout(() => done(new Error(`${name} did not start listening in time:\n${child.output}`)), timeoutMs);
    const onOutput = () => child.output.includes(`${name} listening`) && done();
    const onExit = (code) => done(new Error(`${name} exited with ${code}:\n${child.output}`));
    function done(error) {
      clearTimeout(timer);
      child.stdout.off('data', onOutput);
      child.off('exit', onExit);
      error ? reject(error) : resolveUp();
    }
    child.stdout.on('data', onOutput);
    child.once('exit', onExit);
    onOutput();
  });
  const res = await fetch(`${url}/health`);
  if (!res.ok) throw new Error(`${name} answered /health with ${res.status}`);
}

function run(name, env, cwd) {
  const child = spawn(join(binDir, name), [], {
    cwd,
    // Warnings, and the startup line `waitForListening` awaits.
    env: { PATH: process.env.PATH, RUST_LOG: 'warn,user_service::startup=info,chat_service::startup=info', ...env },
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
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(env);
    } catch (e) {
      // A port found free can be taken before the service binds it (any outgoing connection may
      // get it as its local port, and the test files start stacks side by side): pick others.
      if (attempt < 3 && /Address already in use/.test(e.message)) continue;
      throw e;
    }
  }
}

async function startStackOnce(env) {
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
    await waitForListening(usersUrl, users, 'user-service');
    const chat = run('chat-service', {
      // Tests seed long chats over REST faster than anyone types, and make chats for every test
      // (a test may set its own limits).
      USER_WRITES_PER_SECOND: '10000',
      CHAT_INVITES_PER_MINUTE: '10000',
      MAX_CONNECTIONS_PER_USER: '10000',
      ...common,
      CHAT_SERVICE_PORT: String(chatPort),
      USER_SERVICE_URL: usersUrl,
      WEB_DIR: join(repoRoot, 'web'),
    }, dir);
    children.push(chat);
    await waitForListening(url, chat, 'chat-service');
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, usersUrl, stop };
}
