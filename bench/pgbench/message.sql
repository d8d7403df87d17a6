-- Converge's per-message write transaction (chat-service/src/service/messages.rs `send`), statement
-- for statement: take the next seq under the chat's row lock, insert the message, move the sender's
-- watermarks. 200 chats, like the fan-out grid.
\set n random(1, 200)
BEGIN;
UPDATE chats SET last_seq = last_seq + 1, last_message_at = now() WHERE id = md5('pgbench-chat' || :n)::uuid RETURNING last_seq \gset
INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, created_at)
  VALUES (gen_random_uuid(), md5('pgbench-chat' || :n)::uuid, :last_seq, md5('pgbench-user' || :n)::uuid, gen_random_uuid()::text, 'benchmark message', now());
UPDATE chat_participants SET last_read_seq = :last_seq, last_delivered_seq = :last_seq
  WHERE chat_id = md5('pgbench-chat' || :n)::uuid AND user_id = md5('pgbench-user' || :n)::uuid;
COMMIT;
