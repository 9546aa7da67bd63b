package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/onebox/onebox/internal/inbox"
)

var (
	errReadOnly  = errors.New("write in a read-only transaction")
	errFinished  = errors.New("transaction used after its fn returned")
	errContended = errors.New("tenant locked by another writer; the update will run again")
)

// Tenant collection names internal/bolt reserves for its event log; refused
// here too so data written on one store fits the other.
var reservedNames = []string{"events", "meta"}

// querier is what a tx needs of a connection or a pgx transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// tx is one attempt of an Update, or one View. An Update's transaction
// starts lazily, at fn's first call, so a tenant fn opens with can be
// locked before the snapshot is taken. A tx is not safe for concurrent use.
type tx struct {
	s    *Store
	ctx  context.Context
	conn *pgxpool.Conn // Update only
	q    querier       // View only; Updates use conn

	writable bool
	begun    bool
	done     bool
	// lockFirst are the tenant lock keys to take before BEGIN (a retry's);
	// locked those this session holds; touched those fn reached.
	lockFirst map[int32]bool
	locked    map[int32]bool
	touched   map[int32]bool
	// doomed: fn reached a tenant another writer holds; the attempt is
	// abandoned and retried with the lock taken up front.
	doomed bool
	// err is the first failed statement: PostgreSQL has aborted the
	// transaction, so nothing more can succeed in it.
	err error
	// clean: the session ended with no transaction open and no locks held.
	clean bool
	// pre are the global records an Update read before reaching any
	// tenant, as read (val nil: absent), so rebase can check them in a
	// later snapshot; preScan: it also scanned, which rebase cannot check.
	pre     []preRead
	preScan bool

	// ops are Puts and Deletes not sent yet, in order; latest indexes the
	// last op per key so Get reads this tx's own writes without a flush.
	ops    []op
	latest map[opKey]int

	heads   map[string]uint64 // tenant -> head as this tx sees it
	dirty   []string          // tenants whose head this tx moved
	pending []inbox.Event     // appended, not written yet
	events  []inbox.Event     // appended, for the publisher
	// writes counts modifications so Scan notices a callback that wrote.
	writes uint64
}

// op is a buffered write. Writes are sent in one pipeline with the next
// Scan, log read or the commit, sparing a round trip each: a write's
// result is only an error, and any failed statement fails the commit.
type op struct {
	tenant, coll string
	key, val     []byte
	del          bool
}

type opKey struct{ tenant, coll, key string }

type preRead struct {
	coll     string
	key, val []byte
}

func (t *tx) db() querier {
	if t.conn != nil {
		return t.conn
	}
	return t.q
}

func tenantKey(tenant string) int32 {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	return int32(h.Sum32())
}

// fail records a failed statement: the transaction is aborted from here on.
func (t *tx) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return err
}

// lockUpFront takes a retry's tenant locks, in key order, then begins.
func (t *tx) lockUpFront() error {
	if len(t.lockFirst) == 0 {
		return nil
	}
	keys := make([]int32, 0, len(t.lockFirst))
	for k := range t.lockFirst {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var sql strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sql, "SELECT pg_advisory_lock(%d, %d); ", lockClassTenant, k)
	}
	// COMMIT ends the implicit transaction the locks ran in, so the
	// snapshot is taken after they were granted.
	sql.WriteString("COMMIT; BEGIN ISOLATION LEVEL SERIALIZABLE")
	t.locked = make(map[int32]bool, len(keys))
	for _, k := range keys {
		t.locked[k] = true // set first: a failure below may have taken some
	}
	if _, err := t.conn.Exec(t.ctx, sql.String()); err != nil {
		t.clean = false
		return fmt.Errorf("update: lock tenants: %w", err)
	}
	t.begun = true
	return nil
}

// enter checks that the tx can still be used and, in an Update, begins the
// transaction and takes tenant's lock as the package doc describes.
func (t *tx) enter(tenant string, write bool) error {
	if t.done {
		return errFinished
	}
	if write && !t.writable {
		return errReadOnly
	}
	if t.err != nil {
		return fmt.Errorf("transaction aborted by an earlier error: %w", t.err)
	}
	if t.doomed {
		return errContended
	}
	if !t.writable {
		return nil
	}
	var key int32
	if tenant != "" {
		key = tenantKey(tenant)
		if t.touched == nil {
			t.touched = map[int32]bool{}
		}
		t.touched[key] = true
	}
	if t.locked == nil {
		t.locked = map[int32]bool{}
	}
	if !t.begun {
		sql := "BEGIN ISOLATION LEVEL SERIALIZABLE"
		if tenant != "" && !t.locked[key] {
			// COMMIT ends the implicit transaction the lock ran in, so the
			// snapshot is taken once the lock is granted.
			sql = fmt.Sprintf("SELECT pg_advisory_lock(%d, %d); COMMIT; %s", lockClassTenant, key, sql)
			t.locked[key] = true
		}
		if _, err := t.conn.Exec(t.ctx, sql); err != nil {
			return t.fail(fmt.Errorf("begin: %w", err))
		}
		t.begun = true
		return nil
	}
	if tenant != "" && !t.locked[key] && t.rebaseable() {
		return t.rebase(key)
	}
	if tenant != "" && !t.locked[key] {
		var ok bool
		if err := t.conn.QueryRow(t.ctx, "SELECT pg_try_advisory_lock($1, $2)", lockClassTenant, key).Scan(&ok); err != nil {
			return t.fail(fmt.Errorf("lock tenant: %w", err))
		}
		if !ok {
			t.doomed = true
			return errContended
		}
		t.locked[key] = true
	}
	return nil
}

// rebaseable reports that the transaction has only read global records so
// far, all of which rebase can check: it holds no lock and wrote nothing.
func (t *tx) rebaseable() bool {
	return t.writable && len(t.locked) == 0 && t.writes == 0 && len(t.ops) == 0 && !t.preScan
}

// rebase moves a transaction that read only global records (a webhook's
// channel, a session) onto a snapshot taken once the first tenant it
// reaches is locked: it rolls back, waits for the lock (holding none, so
// no deadlock), begins again and reads those records once more. If they
// are unchanged, fn's reads are what it would have read in the new
// snapshot, so it goes on there, and the tenant's earlier writers are all
// in that snapshot: nothing left to conflict with. Without this, every
// writer of a busy tenant that starts with a global read would find the
// tenant locked, or read it in a snapshot from before its last writer, and
// run twice.
func (t *tx) rebase(key int32) error {
	t.locked[key] = true // set first: a failure below may have taken it
	sql := fmt.Sprintf("ROLLBACK; SELECT pg_advisory_lock(%d, %d); COMMIT; BEGIN ISOLATION LEVEL SERIALIZABLE", lockClassTenant, key)
	if _, err := t.conn.Exec(t.ctx, sql); err != nil {
		return t.fail(fmt.Errorf("lock tenant: %w", err))
	}
	pre := t.pre
	t.pre = nil
	if len(pre) == 0 {
		return nil
	}
	colls := make([]string, len(pre))
	keys := make([][]byte, len(pre))
	for i, r := range pre {
		colls[i], keys[i] = r.coll, r.key
	}
	rows, err := t.conn.Query(t.ctx, `SELECT r.i, kv.val FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS r(coll, key, i)
		LEFT JOIN kv ON kv.tenant = '' AND kv.coll = r.coll AND kv.key = r.key`, colls, keys)
	if err != nil {
		return t.fail(fmt.Errorf("check reads: %w", err))
	}
	defer rows.Close()
	seen := 0
	same := true
	for rows.Next() {
		var (
			i   int64
			val []byte
		)
		if err := rows.Scan(&i, &val); err != nil {
			return t.fail(fmt.Errorf("check reads: %w", err))
		}
		seen++
		r := pre[i-1]
		if (val == nil) != (r.val == nil) || !bytes.Equal(val, r.val) {
			same = false
		}
	}
	if err := rows.Err(); err != nil {
		return t.fail(fmt.Errorf("check reads: %w", err))
	}
	if seen != len(pre) || !same {
		// fn saw what is no longer so: run it again, lock taken up front.
		t.doomed = true
		return errContended
	}
	return nil
}

// notePre records a global read made before any tenant, for rebase.
func (t *tx) notePre(coll, key string, val []byte) {
	if t.rebaseable() && len(t.touched) == 0 {
		t.pre = append(t.pre, preRead{coll: coll, key: []byte(key), val: val})
	}
}

// commit writes the appended events and the moved heads and commits, in
// one round trip.
func (t *tx) commit() error {
	if !t.begun {
		return nil
	}
	b := &pgx.Batch{}
	t.queueFlush(b)
	b.Queue("COMMIT")
	t.ops, t.latest = nil, nil
	if err := t.conn.SendBatch(t.ctx, b).Close(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (t *tx) queueFlush(b *pgx.Batch) {
	for _, o := range t.ops {
		if o.del {
			b.Queue("DELETE FROM kv WHERE tenant = $1 AND coll = $2 AND key = $3", o.tenant, o.coll, o.key)
		} else {
			b.Queue(`INSERT INTO kv (tenant, coll, key, val) VALUES ($1, $2, $3, $4)
				ON CONFLICT (tenant, coll, key) DO UPDATE SET val = EXCLUDED.val`, o.tenant, o.coll, o.key, o.val)
		}
	}
	t.ops = t.ops[:0]
	clear(t.latest)
	for _, tenant := range t.dirty {
		b.Queue("INSERT INTO heads (tenant, head) VALUES ($1, $2) ON CONFLICT (tenant) DO UPDATE SET head = EXCLUDED.head",
			tenant, int64(t.heads[tenant]))
	}
	for i := range t.pending {
		e := &t.pending[i]
		b.Queue("INSERT INTO events (tenant, seq, data) VALUES ($1, $2, $3)", e.TenantID, int64(e.Seq), e.AppendJSON(nil))
	}
	t.dirty, t.pending = t.dirty[:0], t.pending[:0]
}

// flush sends the buffered writes and events now, for a read that the
// database must answer with them in place.
func (t *tx) flush() error {
	if len(t.ops) == 0 && len(t.dirty) == 0 && len(t.pending) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	t.queueFlush(b)
	if err := t.conn.SendBatch(t.ctx, b).Close(); err != nil {
		return t.fail(fmt.Errorf("write: %w", err))
	}
	return nil
}

// end closes the attempt's transaction (unless committed) and releases its
// locks, even when the caller's ctx has ended.
func (t *tx) end(committed bool) {
	var sql []string
	if t.begun && !committed {
		sql = append(sql, "ROLLBACK")
	}
	if len(t.locked) > 0 {
		sql = append(sql, "SELECT pg_advisory_unlock_all()")
	}
	if len(sql) == 0 {
		t.clean = true
		return
	}
	_, err := t.conn.Exec(context.WithoutCancel(t.ctx), strings.Join(sql, "; "))
	t.clean = err == nil
}

// isRetryable reports a failure that running the transaction again can
// cure: a serialization failure or deadlock, or two writers that picked the
// same seq.
func isRetryable(err error) bool {
	if errors.Is(err, errContended) {
		return true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01":
		return true
	case "23505":
		return pe.TableName == "events" || pe.TableName == "heads"
	}
	return false
}

// scope validates c and returns its tenant ("" for global collections).
func scope(c inbox.Collection) (string, error) {
	if c.Name == "" {
		return "", errors.New("collection without a name")
	}
	if c.Tenant != "" && slices.Contains(reservedNames, c.Name) {
		return "", fmt.Errorf("collection name %q is reserved", c.Name)
	}
	return c.Tenant, nil
}

// Get decodes the record at key into v. A nil v only checks existence.
func (t *tx) Get(c inbox.Collection, key string, v any) error {
	tenant, err := scope(c)
	if err != nil {
		return err
	}
	if err := t.enter(tenant, false); err != nil {
		return err
	}
	var raw []byte
	if i, ok := t.latest[opKey{c.Tenant, c.Name, key}]; ok {
		if t.ops[i].del {
			return fmt.Errorf("%s %q: %w", c.Name, key, inbox.ErrNotFound)
		}
		return t.decode(c, key, t.ops[i].val, v)
	}
	err = t.db().QueryRow(t.ctx, "SELECT val FROM kv WHERE tenant = $1 AND coll = $2 AND key = $3", c.Tenant, c.Name, []byte(key)).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		if tenant == "" {
			t.notePre(c.Name, key, nil)
		}
		return fmt.Errorf("%s %q: %w", c.Name, key, inbox.ErrNotFound)
	}
	if err != nil {
		return t.fail(fmt.Errorf("get %s %q: %w", c.Name, key, err))
	}
	if tenant == "" {
		if raw == nil {
			raw = []byte{} // present, even if empty
		}
		t.notePre(c.Name, key, raw)
	}
	return t.decode(c, key, raw, v)
}

func (t *tx) decode(c inbox.Collection, key string, raw []byte, v any) error {
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s %q: %w", c.Name, key, err)
	}
	return nil
}

// buffer queues a write; see op.
func (t *tx) buffer(o op) {
	if t.latest == nil {
		t.latest = map[opKey]int{}
	}
	t.latest[opKey{o.tenant, o.coll, string(o.key)}] = len(t.ops)
	t.ops = append(t.ops, o)
	t.writes++
}

func (t *tx) Put(c inbox.Collection, key string, v any) error {
	tenant, err := scope(c)
	if err != nil {
		return err
	}
	if err := t.enter(tenant, true); err != nil {
		return err
	}
	raw, err := inbox.EncodeRecord(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", c.Name, key, err)
	}
	t.buffer(op{tenant: c.Tenant, coll: c.Name, key: []byte(key), val: raw})
	return nil
}

func (t *tx) Delete(c inbox.Collection, key string) error {
	tenant, err := scope(c)
	if err != nil {
		return err
	}
	if err := t.enter(tenant, true); err != nil {
		return err
	}
	t.buffer(op{tenant: c.Tenant, coll: c.Name, key: []byte(key), del: true})
	return nil
}

type record struct {
	key, val []byte
}

// Scan visits records with the given prefix in bytewise key order
// (descending when reverse), strictly after `after` in that order. Rows
// come in growing pages; when the callback writes, the rest of the page is
// dropped and the next one starts after the last visited key, so records it
// deleted ahead are not visited (those it adds ahead may or may not be).
func (t *tx) Scan(c inbox.Collection, prefix, after string, reverse bool, fn func(key string, raw []byte) (bool, error)) error {
	tenant, err := scope(c)
	if err != nil {
		return err
	}
	if err := t.enter(tenant, false); err != nil {
		return err
	}
	if tenant == "" && t.writable {
		t.preScan = true
	}
	pfx, aft := []byte(prefix), []byte(after)
	hasAfter := after != ""
	page := 64
	for {
		recs, err := t.scanPage(c, pfx, aft, hasAfter, reverse, page)
		if err != nil {
			return err
		}
		complete := len(recs) < page
		for i, r := range recs {
			writes := t.writes
			more, err := fn(string(r.key), r.val)
			if err != nil || !more {
				return err
			}
			aft, hasAfter = r.key, true
			if t.writes != writes && i < len(recs)-1 {
				complete = false
				break
			}
		}
		if complete {
			return nil
		}
		if page < 1024 {
			page *= 2
		}
	}
}

func (t *tx) scanPage(c inbox.Collection, pfx, aft []byte, hasAfter, reverse bool, limit int) ([]record, error) {
	if t.writable {
		if err := t.flush(); err != nil {
			return nil, err
		}
	}
	var sql strings.Builder
	args := []any{c.Tenant, c.Name}
	sql.WriteString("SELECT key, val FROM kv WHERE tenant = $1 AND coll = $2")
	cond := func(op string, v []byte) {
		args = append(args, v)
		fmt.Fprintf(&sql, " AND key %s $%d", op, len(args))
	}
	end := prefixEnd(pfx)
	if !reverse {
		if hasAfter && bytes.Compare(aft, pfx) >= 0 {
			cond(">", aft)
		} else if len(pfx) > 0 {
			cond(">=", pfx)
		}
		if end != nil {
			cond("<", end)
		}
		sql.WriteString(" ORDER BY key")
	} else {
		if hasAfter && (end == nil || bytes.Compare(aft, end) < 0) {
			cond("<", aft)
		} else if end != nil {
			cond("<", end)
		}
		if len(pfx) > 0 {
			cond(">=", pfx)
		}
		sql.WriteString(" ORDER BY key DESC")
	}
	sql.WriteString(" LIMIT " + strconv.Itoa(limit))
	rows, err := t.db().Query(t.ctx, sql.String(), args...)
	if err != nil {
		return nil, t.fail(fmt.Errorf("scan %s: %w", c.Name, err))
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (record, error) {
		var r record
		err := row.Scan(&r.key, &r.val)
		return r, err
	})
	if err != nil {
		return nil, t.fail(fmt.Errorf("scan %s: %w", c.Name, err))
	}
	return recs, nil
}

// prefixEnd is the smallest key greater than every key with prefix p, or nil
// when there is none (empty prefix or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Append assigns the next seq inside this transaction. The event and the
// new head are written at commit (or before the log is read in this tx);
// two writers that picked the same seq cannot both commit, so the log has
// no gaps and no duplicates.
func (t *tx) Append(tenant string, e *inbox.Event) error {
	if err := t.enter(tenant, true); err != nil {
		return err
	}
	if tenant == "" {
		return errors.New("append: empty tenant")
	}
	if e == nil {
		return errors.New("append: nil event")
	}
	head, err := t.Head(tenant)
	if err != nil {
		return err
	}
	e.Seq, e.TenantID = head+1, tenant
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	if !slices.Contains(t.dirty, tenant) {
		t.dirty = append(t.dirty, tenant)
	}
	t.heads[tenant] = e.Seq
	t.pending = append(t.pending, *e)
	t.events = append(t.events, *e)
	return nil
}

func (t *tx) Head(tenant string) (uint64, error) {
	if err := t.enter(tenant, false); err != nil {
		return 0, err
	}
	if h, ok := t.heads[tenant]; ok {
		return h, nil
	}
	var head int64
	err := t.db().QueryRow(t.ctx, "SELECT head FROM heads WHERE tenant = $1", tenant).Scan(&head)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, t.fail(fmt.Errorf("head of tenant %q: %w", tenant, err))
	}
	if t.heads == nil {
		t.heads = map[string]uint64{}
	}
	t.heads[tenant] = uint64(head)
	return uint64(head), nil
}
