-- Token revocations, kept with the user: tokens of this user issued before this time are
-- refused. The user service writes it in the transaction of the change that revokes them
-- (user/server/revocations.py) and reads it with the caller's standing on every call, so each
-- of its instances refuses such a token at once; the REVOCATIONS bucket carries the same time
-- to the other services. NULL: nothing revoked. The runtime role's table grants (0002) cover it.
ALTER TABLE appuser ADD COLUMN IF NOT EXISTS tokensnotbefore timestamptz;
