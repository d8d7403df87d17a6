-- Measured, not kept (docs/benchmarks-history.md, "Earlier change (71df765 … f1429f9)"): the batch as a PL/pgSQL function
-- (session-local, pg_temp) that locks the batch's chats in id order, decides and writes each send
-- with small statements whose plans it keeps, then raises the senders' watermarks in (chat, user)
-- order. Same parameters and result columns as STORE, without its in-batch retry check (a cost
-- measurement, not a replacement). `bench/statement-cpu --variants`.
CREATE OR REPLACE FUNCTION pg_temp.store_batch(stamp timestamptz, chat_ids uuid[], senders uuid[], cmids text[], contents text[], reply_tos bigint[], ids uuid[], chats_sorted uuid[], is_reply boolean[])
RETURNS TABLE (n bigint, outcome text, seq bigint, first_n bigint, existing uuid) LANGUAGE plpgsql AS $$
DECLARE
  i int; last bigint; ex uuid; k int := array_length(chat_ids, 1);
  st_chats uuid[] := '{}'; st_users uuid[] := '{}'; st_seqs bigint[] := '{}';
BEGIN
  PERFORM 1 FROM chats c WHERE c.id = ANY(chats_sorted) ORDER BY c.id FOR UPDATE;
  FOR i IN 1..k LOOP
    n := i; seq := NULL; first_n := NULL; existing := NULL;
    SELECT c.last_seq INTO last FROM chats c WHERE c.id = chat_ids[i];
    IF NOT FOUND THEN outcome := 'not_found'; RETURN NEXT; CONTINUE; END IF;
    IF NOT EXISTS (SELECT 1 FROM chat_participants p WHERE p.chat_id = chat_ids[i] AND p.user_id = senders[i]) THEN
      outcome := 'forbidden'; RETURN NEXT; CONTINUE; END IF;
    SELECT m.id INTO ex FROM messages m WHERE m.chat_id = chat_ids[i] AND m.sender_id = senders[i] AND m.client_msg_id = cmids[i] LIMIT 1;
    IF FOUND THEN outcome := 'existing'; existing := ex; RETURN NEXT; CONTINUE; END IF;
    IF is_reply[i] AND (reply_tos[i] < 1 OR reply_tos[i] > last) THEN outcome := 'invalid_seq'; RETURN NEXT; CONTINUE; END IF;
    UPDATE chats c SET last_seq = last + 1, last_message_at = stamp WHERE c.id = chat_ids[i];
    INSERT INTO messages (id, chat_id, seq, sender_id, client_msg_id, content, reply_to, created_at)
      VALUES (ids[i], chat_ids[i], last + 1, senders[i], cmids[i], contents[i], CASE WHEN is_reply[i] THEN reply_tos[i] END, stamp);
    st_chats := st_chats || chat_ids[i]; st_users := st_users || senders[i]; st_seqs := st_seqs || (last + 1);
    outcome := 'store'; seq := last + 1; first_n := i; RETURN NEXT;
  END LOOP;
  WITH r AS (SELECT c, u, max(s) AS s FROM unnest(st_chats, st_users, st_seqs) AS x(c, u, s) GROUP BY c, u),
       l AS (SELECT p.chat_id, p.user_id, r.s FROM chat_participants p JOIN r ON p.chat_id = r.c AND p.user_id = r.u ORDER BY p.chat_id, p.user_id FOR UPDATE OF p)
  UPDATE chat_participants p SET last_read_seq = GREATEST(p.last_read_seq, l.s), last_delivered_seq = GREATEST(p.last_delivered_seq, l.s)
    FROM l WHERE p.chat_id = l.chat_id AND p.user_id = l.user_id;
END $$;
