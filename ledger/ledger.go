package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"golang.org/x/mod/sumdb/note"

	"github.com/veritrace/veritrace/ledger/format"
)

// Subdirectories of the data directory.
const (
	LogDir = "ledger" // entries, tree hashes, checkpoints, indexes
	KeyDir = "keys"   // wrapped data keys
)

// DefaultTenant is the tenant that exists in every ledger.
const DefaultTenant = "default"

// SystemTenant is the reserved log of server-wide events: API key and
// tenant changes, and refused requests that name no existing tenant. It
// exists in every ledger and cannot be created by name.
const SystemTenant = "system"

// Options configure Open.
type Options struct {
	// Dir is the data directory. Required.
	Dir string
	// Keys are the master key and the log signing key. Required.
	Keys *Keys
	// CheckpointInterval is how often a checkpoint is signed while entries
	// arrive. Default 1s.
	CheckpointInterval time.Duration
	// Logger receives operational logs. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MinFreeBytes is the reserve of free disk space on the data
	// directory's filesystem: below it appends are refused (ErrNoSpace)
	// until space returns. 0 means DefaultMinFreeBytes; negative, no reserve.
	MinFreeBytes int64
}

// Ledger is an open ledger. Its methods are safe for concurrent use.
type Ledger struct {
	db       *badger.DB
	keys     *keyStore
	keysDB   *badger.DB
	signer   note.Signer
	verifier note.Verifier
	vkey     string
	name     string
	log      *slog.Logger
	now      func() time.Time
	interval time.Duration

	// recordsMu makes every write of state records atomic with the reads of
	// UpdateState and PutStateIf (the log database runs without Badger's
	// conflict detection: its one writer goroutine owns the log's keys).
	recordsMu sync.Mutex

	tenantMu sync.Mutex
	tenants  map[string]uint32

	// committed tree sizes, and the day of the last committed appended_at,
	// published by the writer after each commit.
	stateMu   sync.RWMutex
	committed map[uint32]uint64
	lastDay   map[uint32]uint32
	// daySealed[tenant]: the first index from which every entry is sealed
	// under a data key of its appended_at day (nsDaySealed); entries below
	// were appended by an earlier build.
	daySealed map[uint32]uint64

	reqs     chan *appendReq
	txnLimit txnCost // budget of one group's transaction
	stop     chan struct{}
	quit     chan struct{} // closed when the databases are about to close
	wg       sync.WaitGroup
	closeMu  sync.RWMutex
	closed   bool
	gate     *gate // the failed state (health.go)
	space    *spaceGuard

	cpMu   sync.Mutex
	latest map[uint32]*Checkpoint

	retiredCache retiredCache // the writer's, see retiredCache
	closedCache  closedCache  // the writer's, see closedCache

	shredMu sync.Mutex    // one Shred at a time
	gcReq   chan struct{} // value-log GC requests, served by valueLogGC

	hooks testHooks
}

// testHooks let tests hold the writer and inject storage faults. Tests set
// them right after Open, before the first append.
type testHooks struct {
	beforeGroup func()                        // writer: after a group's first request, before gathering the rest
	set         func(key, value []byte) error // writer: before each Set of a group
	commit      func(txn *badger.Txn) error   // writer: instead of txn.Commit (in the group's commit goroutine)
	dropped     func(err error)               // writer: a group built while another committed was dropped (pipeline.go)
}

// valueThreshold: values from this size up go to Badger's value log; the
// LSM tree holds a pointer.
const valueThreshold = 1 << 10

func badgerOptions(dir string, key []byte, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithValueThreshold(valueThreshold).
		WithEncryptionKey(key).
		WithIndexCacheSize(64 << 20).
		WithBlockCacheSize(64 << 20).
		WithMemTableSize(16 << 20).
		WithNumMemtables(3).
		// Payloads are sealed before Badger sees them, so compression buys
		// nothing; without it flushes and compactions need far less memory.
		WithCompression(options.None).
		WithNumCompactors(2).
		WithValueLogFileSize(256 << 20).
		WithDetectConflicts(false). // one writer goroutine owns every key it reads and writes
		WithLogger(badgerLogger{log})
}

// Open opens or creates the ledger in opts.Dir. It refuses data of an
// unknown format version (ErrUnknownFormat) and keys that do not match the
// data (ErrKeyMismatch). The caller must Close the ledger.
func Open(ctx context.Context, opts Options) (*Ledger, error) {
	if opts.Dir == "" || opts.Keys == nil || len(opts.Keys.Master) != MasterKeySize {
		return nil, fmt.Errorf("%w: Dir and a %d-byte master key are required", ErrInvalid, MasterKeySize)
	}
	if opts.CheckpointInterval <= 0 {
		opts.CheckpointInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	reserve := uint64(DefaultMinFreeBytes)
	switch {
	case opts.MinFreeBytes > 0:
		reserve = uint64(opts.MinFreeBytes)
	case opts.MinFreeBytes < 0:
		reserve = 0
	}
	signer, err := note.NewSigner(opts.Keys.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	vkey, err := opts.Keys.VerifierKey()
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	// Badger creates missing directories: a log without its key database (or
	// the reverse) must be refused before it does, unless the directory's
	// creation was interrupted (CreatingFile) between the two.
	logDir, keyDir := filepath.Join(opts.Dir, LogDir), filepath.Join(opts.Dir, KeyDir)
	creating := exists(filepath.Join(opts.Dir, CreatingFile))
	if hasLog, hasKeys := exists(logDir), exists(keyDir); hasLog != hasKeys && !creating {
		missing := keyDir + " (the data keys)"
		if !hasLog {
			missing = logDir + " (the log database)"
		}
		return nil, fmt.Errorf("%w: %s is missing; nothing was created or changed", ErrIncomplete, missing)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	bkey := deriveKey(opts.Keys.Master, infoBadger)
	db, err := openDB(filepath.Join(opts.Dir, LogDir), bkey, opts.Logger, func(db *badger.DB) error { return checkFormat(db, opts.Logger) })
	if err != nil {
		return nil, err
	}
	keysDB, err := openDB(filepath.Join(opts.Dir, KeyDir), bkey, opts.Logger, func(db *badger.DB) error { return checkKeyFormat(db, opts.Logger) })
	if err != nil {
		db.Close()
		return nil, err
	}
	g := &gate{log: opts.Logger}
	ks, err := newKeyStore(keysDB, opts.Keys.Master, g)
	if err != nil {
		db.Close()
		keysDB.Close()
		return nil, err
	}
	l := &Ledger{
		db: db, keys: ks, keysDB: keysDB, gate: g,
		signer: signer, verifier: verifier, vkey: vkey, name: signer.Name(),
		log: opts.Logger, now: opts.Now, interval: opts.CheckpointInterval,
		tenants:   make(map[string]uint32),
		committed: make(map[uint32]uint64),
		lastDay:   make(map[uint32]uint32),
		daySealed: make(map[uint32]uint64),
		reqs:      make(chan *appendReq, 1024),
		txnLimit:  txnLimitOf(db),
		stop:      make(chan struct{}),
		quit:      make(chan struct{}),
		space:     &spaceGuard{dir: opts.Dir, reserve: reserve, statfs: freeBytes, log: opts.Logger},
		latest:    make(map[uint32]*Checkpoint),
		gcReq:     make(chan struct{}, 1),
	}
	if err := l.load(ctx); err != nil {
		db.Close()
		keysDB.Close()
		return nil, err
	}
	// Both databases are set up (formats, verifier key, tenants: durable):
	// the directory's creation, if it was one, is done.
	if err := finishCreation(opts.Dir); err != nil {
		db.Close()
		keysDB.Close()
		return nil, err
	}
	l.wg.Add(3)
	go l.writer()
	go l.checkpointer()
	go l.valueLogGC()
	return l, nil
}

// openDB opens a database for writing and checks (or migrates) its
// format with check.
func openDB(dir string, key []byte, log *slog.Logger, check func(*badger.DB) error) (*badger.DB, error) {
	if err := removeEmptyLogFiles(dir, log); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	db, err := badger.Open(badgerOptions(dir, key, log))
	if err != nil {
		if heldByAnother(dir, false) {
			return nil, lockedError(dir, err)
		}
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil, fmt.Errorf("open %s: %w: the master key is not the one this data was written with", dir, ErrKeyMismatch)
		}
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := check(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return db, nil
}

// emptyLogFiles lists the memtable (.mem) and value-log (.vlog) files of a
// Badger directory that are empty. A crash between Badger creating such a
// file and sizing it leaves one; it holds nothing, but Badger v4 refuses
// to open the directory while it is there (dgraph-io/badger#2207).
func emptyLogFiles(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if !de.Type().IsRegular() || (!strings.HasSuffix(de.Name(), ".mem") && !strings.HasSuffix(de.Name(), ".vlog")) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			return nil, err
		}
		if fi.Size() == 0 {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	return out, nil
}

// removeEmptyLogFiles removes the empty memtable and value-log files a
// crash left (emptyLogFiles), so that Badger opens the directory, and
// makes the removal durable.
func removeEmptyLogFiles(dir string, log *slog.Logger) error {
	empty, err := emptyLogFiles(dir)
	if err != nil || len(empty) == 0 {
		return err
	}
	for _, f := range empty {
		log.Warn("removing an empty log file a crash left (it holds nothing)", "file", f)
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// lockedError says plainly that another process holds dir, wrapping
// ErrLocked and Badger's error.
func lockedError(dir string, err error) error {
	return fmt.Errorf("another process (a running veritrace server?) holds %s; stop it first (%w: %w)", dir, ErrLocked, err)
}

// openDBReadOnly opens a database for reading only: nothing in its
// directory is created or changed. It refuses an unknown format version.
func openDBReadOnly(dir string, key []byte, log *slog.Logger) (*badger.DB, error) {
	if !exists(dir) {
		return nil, fmt.Errorf("open %s: %w", dir, os.ErrNotExist)
	}
	notClean := fmt.Errorf("%w: %s was not closed cleanly (a crash or kill) and must be recovered before it can be read without changing it: start the server on it once and stop it", ErrNotClosedCleanly, dir)
	if empty, err := emptyLogFiles(dir); err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	} else if len(empty) > 0 {
		return nil, notClean
	}
	db, err := badger.Open(badgerOptions(dir, key, log).WithReadOnly(true))
	if err != nil {
		// Badger wraps this one without %w.
		if errors.Is(err, badger.ErrTruncateNeeded) || strings.Contains(err.Error(), badger.ErrTruncateNeeded.Error()) {
			return nil, notClean
		}
		if heldByAnother(dir, true) {
			return nil, lockedError(dir, err)
		}
		if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
			return nil, fmt.Errorf("open %s: %w: the master key is not the one this data was written with", dir, ErrKeyMismatch)
		}
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaFormat)
		if err != nil {
			return fmt.Errorf("format version: %w", err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if len(v) == 4 && binary.BigEndian.Uint32(v) == 1 {
			return fmt.Errorf("%w: found 1, this build reads %d: a read-only open does not migrate it: start the server on it once, which does", ErrUnknownFormat, logFormatVersion)
		}
		if len(v) != 4 || (binary.BigEndian.Uint32(v) != logFormatVersion && binary.BigEndian.Uint32(v) != 2) {
			return fmt.Errorf("%w: found %x, this build reads %d", ErrUnknownFormat, v, logFormatVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return db, nil
}

// checkFormat writes the format version into a new log database, migrates
// one of format 1 (migrateLogV1) and refuses any other version. Format 2
// needs no rewriting: its index term keys are posting blocks of one entry.
func checkFormat(db *badger.DB, log *slog.Logger) error {
	v, err := readFormat(db)
	switch {
	case err != nil:
		return err
	case v == 1:
		return migrateLogV1(db, log)
	case v == 0 || v == 2 || v == logFormatVersion:
		return setFormat(db, logFormatVersion, v)
	}
	return fmt.Errorf("%w: log database format %d, this build reads %d", ErrUnknownFormat, v, logFormatVersion)
}

// load checks the signing key against the data, creates the default
// tenant, and reads every tenant's tree size and latest checkpoint.
func (l *Ledger) load(ctx context.Context) error {
	err := l.update("store the verifier key", func(txn *badger.Txn) error {
		item, err := txn.Get(metaVerifier)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set(metaVerifier, []byte(l.vkey))
		}
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		if string(v) != l.vkey {
			return fmt.Errorf("%w: the log was signed by %q, the signing key given is %q", ErrKeyMismatch, v, l.vkey)
		}
		return nil
	})
	if err != nil {
		return err
	}
	unsealed := map[uint32]uint64{}
	err = l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsTenantName}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			id := binary.BigEndian.Uint32(v)
			l.tenants[string(item.Key()[1:])] = id
			size, err := readTreeSize(txn, id)
			if err != nil {
				return err
			}
			l.committed[id] = size
			st, err := l.loadState(txn, id)
			if err != nil {
				return err
			}
			if size > 0 {
				l.lastDay[id] = dayOf(st.time)
			}
			from, ok, err := readU64(txn, tenantKey(nsDaySealed, id))
			if err != nil {
				return err
			}
			if !ok {
				from = size // a log of an earlier build: its entries so far are not
				unsealed[id] = size
			}
			l.daySealed[id] = from
			cp, err := readLatestCheckpoint(txn, id)
			if err != nil {
				return err
			}
			if cp != nil {
				l.latest[id] = cp
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load tenants: %w", err)
	}
	if len(unsealed) > 0 {
		if err := l.update("mark where entries are sealed by day", func(txn *badger.Txn) error {
			for id, from := range unsealed {
				if err := txn.Set(tenantKey(nsDaySealed, id), binary.BigEndian.AppendUint64(nil, from)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	for _, t := range []string{DefaultTenant, SystemTenant} {
		if _, err := l.tenantID(ctx, t, true); err != nil {
			return err
		}
	}
	return nil
}

// CreateTenant creates a tenant's log. It returns false, and no error, if
// the tenant exists. The system tenant's name is reserved.
func (l *Ledger) CreateTenant(ctx context.Context, name string) (bool, error) {
	if name == SystemTenant {
		return false, fmt.Errorf("%w: tenant name %q is reserved", ErrInvalid, name)
	}
	if _, err := l.tenantID(ctx, name, false); err == nil {
		return false, nil
	}
	if _, err := l.tenantID(ctx, name, true); err != nil {
		return false, err
	}
	return true, nil
}

func readTreeSize(txn *badger.Txn, tenant uint32) (uint64, error) {
	size, _, err := readU64(txn, treeSizeKey(tenant))
	if err != nil {
		return 0, fmt.Errorf("tree size: %w", err)
	}
	return size, nil
}

// readU64 reads a u64 value; false if the key is not set.
func readU64(txn *badger.Txn, key []byte) (uint64, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("value of %d bytes, want 8", len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err == nil, err
}

// tenantID returns a tenant's id. With create, a missing tenant is
// created; without, ErrNotFound is returned.
func (l *Ledger) tenantID(ctx context.Context, name string, create bool) (uint32, error) {
	if err := format.ValidateTenant(name); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	l.tenantMu.Lock()
	defer l.tenantMu.Unlock()
	if id, ok := l.tenants[name]; ok {
		return id, nil
	}
	if !create {
		return 0, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	var id uint32
	err := l.update("create tenant", func(txn *badger.Txn) error {
		id = 1
		item, err := txn.Get(metaNextTenant)
		if err == nil {
			err = item.Value(func(v []byte) error {
				id = binary.BigEndian.Uint32(v)
				return nil
			})
		}
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if err := txn.Set(metaNextTenant, binary.BigEndian.AppendUint32(nil, id+1)); err != nil {
			return err
		}
		if err := txn.Set(tenantIDKey(id), []byte(name)); err != nil {
			return err
		}
		if err := txn.Set(tenantKey(nsDaySealed, id), binary.BigEndian.AppendUint64(nil, 0)); err != nil {
			return err
		}
		return txn.Set(tenantNameKey(name), binary.BigEndian.AppendUint32(nil, id))
	})
	if err != nil {
		return 0, fmt.Errorf("create tenant %q: %w", name, err)
	}
	l.tenants[name] = id
	l.stateMu.Lock()
	l.committed[id] = 0
	l.daySealed[id] = 0
	l.stateMu.Unlock()
	l.log.InfoContext(ctx, "tenant created", "tenant", name)
	return id, nil
}

// Tenants returns the names of the ledger's tenants, sorted.
func (l *Ledger) Tenants() []string {
	l.tenantMu.Lock()
	defer l.tenantMu.Unlock()
	names := make([]string, 0, len(l.tenants))
	for n := range l.tenants {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Size returns the committed tree size of a tenant's log.
func (l *Ledger) Size(ctx context.Context, tenant string) (uint64, error) {
	id, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return 0, err
	}
	return l.committedSize(id), nil
}

// appendDay is the day of the data keys an append seals under: today, or
// the day of the tenant's last appended_at if the clock is behind it
// (appended_at never goes back, and the writer commits every entry under a
// key of its appended_at day).
func (l *Ledger) appendDay(id uint32) uint32 {
	day := dayOf(l.now())
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	return max(day, l.lastDay[id])
}

func (l *Ledger) committedSize(id uint32) uint64 {
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	return l.committed[id]
}

// VerifierKey returns the note verifier key of the log's signing key.
func (l *Ledger) VerifierKey() string { return l.vkey }

// Origin returns the checkpoint origin line of a tenant's log:
// the signing key's name, "/", the tenant.
func (l *Ledger) Origin(tenant string) string { return l.name + "/" + tenant }

// Close stops accepting appends, lets the writer commit every append it
// has accepted, signs a final checkpoint for each tenant that grew, and
// closes the databases.
func (l *Ledger) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	l.closeMu.Unlock()
	l.wg.Wait()
	l.signDue(context.Background())
	close(l.quit)
	return errors.Join(l.db.Close(), l.keysDB.Close())
}

// badgerLogger sends Badger's warnings and errors to slog and drops its
// chatter.
type badgerLogger struct{ log *slog.Logger }

func (b badgerLogger) Errorf(f string, args ...any) {
	b.log.Error("badger: " + fmt.Sprintf(f, args...))
}
func (b badgerLogger) Warningf(f string, args ...any) {
	b.log.Warn("badger: " + fmt.Sprintf(f, args...))
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
