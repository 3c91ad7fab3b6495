-- Broker policies (DESIGN §13): the hosts a secret's value may be sent to and the header it
-- goes into, as the JSON of `core::broker::PolicySpec`; NULL when the secret is not brokered.
ALTER TABLE secrets ADD COLUMN broker TEXT;
