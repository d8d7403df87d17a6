-- Chats for the pgbench reference, in Converge's own tables: chat n has id md5('pgbench-chat' || n)
-- and one participant, md5('pgbench-user' || n), who sends. Run against the bench database after
-- chat-service has migrated it.
DELETE FROM messages WHERE chat_id IN (SELECT md5('pgbench-chat' || n)::uuid FROM generate_series(1, 200) n);
DELETE FROM chat_participants WHERE chat_id IN (SELECT md5('pgbench-chat' || n)::uuid FROM generate_series(1, 200) n);
DELETE FROM chats WHERE id IN (SELECT md5('pgbench-chat' || n)::uuid FROM generate_series(1, 200) n);
INSERT INTO chats (id, kind, title, created_by, created_at, last_seq)
  SELECT md5('pgbench-chat' || n)::uuid, 'group', 'pgbench', md5('pgbench-user' || n)::uuid, now(), 0
  FROM generate_series(1, 200) n;
INSERT INTO chat_participants (chat_id, user_id, role, joined_at)
  SELECT md5('pgbench-chat' || n)::uuid, md5('pgbench-user' || n)::uuid, 'owner', now()
  FROM generate_series(1, 200) n;
