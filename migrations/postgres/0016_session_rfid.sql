-- The RFID card a session was started with (a tap at the charger), so that
-- its OCPI CDR names the card (cdr_token type RFID) rather than the account.
-- The same upper-case hex UID rfid_cards holds; NULL for other sessions.
ALTER TABLE payment_sessions ADD COLUMN rfid_uid TEXT;
