-- The issue's reference transaction: UPDATE chats … RETURNING last_seq; INSERT the message.
\set n random(1, 200)
BEGIN;
UPDATE chats SET last_seq = last_seq + 1, last_message_at = now() WHERE id = md5('pgbench-chat' || :n)::uuid RETURNING last_seq \gset
INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, created_at)
  VALUES (gen_random_uuid(), md5('pgbench-chat' || :n)::uuid, :last_seq, md5('pgbench-user' || :n)::uuid, gen_random_uuid()::text, 'benchmark message', now());
COMMIT;
