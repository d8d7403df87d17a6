-- Measured, not kept (docs/benchmarks-history.md, "Earlier change (71df765 … f1429f9)"): the writer's general statement (STORE in
-- chat-service/src/service/writer/postgres.rs) for a batch whose sends all go to different chats,
-- without the numbering's window functions and aggregates: each stored send takes its chat's
-- last_seq + 1. Same parameters and result columns as STORE. `bench/statement-cpu --variants`.
WITH locked AS (
       SELECT id, last_seq FROM chats WHERE id = ANY($8) ORDER BY id FOR UPDATE),
     s AS (
       SELECT chat_id, sender_id, client_msg_id, content, CASE WHEN is_reply THEN reply_to END AS reply_to, id, n
       FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bigint[], $9::boolean[], $7::uuid[])
         WITH ORDINALITY AS s(chat_id, sender_id, client_msg_id, content, reply_to, is_reply, id, n)),
     checked AS (
       SELECT s.*, l.last_seq AS base, e.id AS existing,
         CASE WHEN l.id IS NULL THEN 'not_found'
           WHEN NOT EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = s.chat_id AND p.user_id = s.sender_id)
             THEN 'forbidden'
           WHEN e.id IS NOT NULL THEN 'existing'
           WHEN s.reply_to IS NOT NULL AND (s.reply_to < 1 OR s.reply_to > l.last_seq) THEN 'invalid_seq'
           ELSE 'store' END AS outcome
       FROM s LEFT JOIN locked l ON l.id = s.chat_id
       LEFT JOIN LATERAL (
         SELECT id FROM messages m
         WHERE m.chat_id = s.chat_id AND m.sender_id = s.sender_id AND m.client_msg_id = s.client_msg_id LIMIT 1) e
         ON true),
     fresh AS (SELECT *, base + 1 AS seq FROM checked WHERE outcome = 'store'),
     bumped AS (
       UPDATE chats AS c SET last_seq = f.seq, last_message_at = $1
       FROM fresh f WHERE c.id = ANY($8) AND c.id = f.chat_id),
     senders AS (
       SELECT p.chat_id, p.user_id, f.seq FROM chat_participants p
       JOIN fresh f ON p.chat_id = f.chat_id AND p.user_id = f.sender_id
       ORDER BY p.chat_id, p.user_id FOR UPDATE OF p),
     raised AS (
       UPDATE chat_participants AS p SET last_read_seq = GREATEST(p.last_read_seq, r.seq),
         last_delivered_seq = GREATEST(p.last_delivered_seq, r.seq)
       FROM senders r WHERE p.chat_id = r.chat_id AND p.user_id = r.user_id),
     inserted AS (
       INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, reply_to, created_at)
       SELECT id, chat_id, seq, sender_id, client_msg_id, content, reply_to, $1 FROM fresh)
     SELECT n, outcome, CASE WHEN outcome = 'store' THEN base + 1 END AS seq, n AS first_n, existing FROM checked ORDER BY n
