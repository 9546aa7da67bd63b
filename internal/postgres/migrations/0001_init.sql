-- Records of every collection: tenant '' holds the global ones. Keys are
-- bytea so they compare bytewise, the order bbolt gives, whatever bytes
-- they hold; values are the JSON documents exactly as the service wrote them.
CREATE TABLE kv (
	tenant text COLLATE "C" NOT NULL,
	coll   text COLLATE "C" NOT NULL,
	key    bytea NOT NULL,
	val    bytea NOT NULL,
	PRIMARY KEY (tenant, coll, key)
);

-- Each tenant's event log: seq runs 1..head with no gaps.
CREATE TABLE events (
	tenant text COLLATE "C" NOT NULL,
	seq    bigint NOT NULL,
	data   bytea NOT NULL,
	PRIMARY KEY (tenant, seq)
);

-- The last seq assigned per tenant, written in the transaction that appends.
CREATE TABLE heads (
	tenant text COLLATE "C" PRIMARY KEY,
	head   bigint NOT NULL
);
