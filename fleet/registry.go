package fleet

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dagmm/dagmm/model"
)

// ErrCorrupt is wrapped by the errors of a read that found a stored model
// that is not the one published: bytes changed in the store, an object
// replaced or missing. The caller keeps the model it has.
var ErrCorrupt = errors.New("fleet: corrupted model")

// Causes of a [Change] of a host's current version.
const (
	CausePublish  = "publish"
	CauseRollback = "rollback"
)

// Metadata keys of a model object, beside its name: the registry's own
// record of the object, readable with "nats object info".
const (
	MetaHost    = "dagmm-host"
	MetaVersion = "dagmm-version"
	MetaDigest  = "dagmm-digest"
	MetaCreated = "dagmm-created"
)

// Key prefixes in the index bucket: "cur.<host key>" holds a host's
// current version (its history is the history of the current version),
// "ver.<host key>" the versions kept.
const (
	curPrefix = "cur."
	verPrefix = "ver."
)

// casAttempts bounds the retries of a compare-and-set on a key that other
// writers change at the same time.
const casAttempts = 100

// RegistryConfig configures a [Registry]: the buckets it creates when they
// do not exist (an existing bucket is bound as it is, so that a client
// never resets an operator's settings) and how many versions it keeps. The
// zero value is usable: [RegistryConfig.Validate] fills the defaults of
// [DefaultRegistryConfig].
type RegistryConfig struct {
	// Objects is the Object Store bucket of the artifacts, one object per
	// host version ("dagmm-models").
	Objects string
	// Index is the KV bucket of each host's current version and of the
	// versions kept ("dagmm-registry").
	Index string
	// History is how many changes of each host's current version the index
	// keeps (publishes and rollbacks, the KV bucket's history per key;
	// 16, at most 64).
	History int
	// Keep is how many versions of each host's model are kept (5); a
	// publish deletes the oldest beyond it, never the current one. At
	// least 2, so there is a version to roll back to.
	Keep int
	// Replicas of both buckets in a JetStream cluster (1).
	Replicas int
	// MaxBytes caps the Object Store bucket; -1 or 0 for no cap. A
	// four-metric model of the default architecture is about 15 KB, so
	// 100,000 hosts x 5 versions need about 7.5 GB.
	MaxBytes int64
	// Memory keeps both buckets in memory rather than on disk (tests).
	Memory bool
	// Log receives the warnings of work done after a call succeeded (the
	// deletion of old versions) and of watched entries that cannot be
	// read; nil logs nothing.
	Log *slog.Logger
}

// DefaultRegistryConfig returns the default registry settings.
func DefaultRegistryConfig() RegistryConfig {
	return RegistryConfig{Objects: "dagmm-models", Index: "dagmm-registry", History: 16, Keep: 5, Replicas: 1}
}

// Validate fills the zero fields of c with the defaults and reports a
// setting that cannot work.
func (c *RegistryConfig) Validate() error {
	d := DefaultRegistryConfig()
	if c.Objects == "" {
		c.Objects = d.Objects
	}
	if c.Index == "" {
		c.Index = d.Index
	}
	if c.History == 0 {
		c.History = d.History
	}
	if c.Keep == 0 {
		c.Keep = d.Keep
	}
	if c.Replicas == 0 {
		c.Replicas = d.Replicas
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	switch {
	case !validBucket(c.Objects):
		return fmt.Errorf("fleet: registry objects bucket %q: want letters, digits, '-' and '_'", c.Objects)
	case !validBucket(c.Index):
		return fmt.Errorf("fleet: registry index bucket %q: want letters, digits, '-' and '_'", c.Index)
	case c.History < 1 || c.History > jetstream.KeyValueMaxHistory:
		return fmt.Errorf("fleet: registry history %d: want 1 to %d", c.History, jetstream.KeyValueMaxHistory)
	case c.Keep < 2:
		return fmt.Errorf("fleet: registry keep %d: want 2 or more versions, so there is one to roll back to", c.Keep)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("fleet: registry replicas %d: want 1 to 5", c.Replicas)
	}
	return nil
}

func validBucket(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !keepByte(name[i]) {
			return false
		}
	}
	return true
}

// Change is one change of a host's current version: its new current
// version, the version it replaced and why.
type Change struct {
	ModelInfo
	// From is the version current before, 0 when there was none.
	From uint64 `json:"from,omitempty"`
	// Cause is CausePublish or CauseRollback.
	Cause string `json:"cause"`
	// At is when the change was recorded (the KV entry's time).
	At time.Time `json:"-"`
}

// versionList is the value of a "ver." key: the versions of a host kept.
type versionList struct {
	// Latest is the highest version number ever handed out, so that a
	// number is never reused, even after its model was deleted.
	Latest uint64 `json:"latest"`
	// Kept are the versions kept, by ascending version.
	Kept []ModelInfo `json:"kept"`
}

func (v *versionList) find(version uint64) (ModelInfo, bool) {
	i := slices.IndexFunc(v.Kept, func(m ModelInfo) bool { return m.Version == version })
	if i < 0 {
		return ModelInfo{}, false
	}
	return v.Kept[i], true
}

// numbers returns the version numbers kept, for error messages.
func (v *versionList) numbers() []uint64 {
	n := make([]uint64, len(v.Kept))
	for i, m := range v.Kept {
		n[i] = m.Version
	}
	return n
}

// Registry keeps every host's models in JetStream: the artifacts in an
// Object Store bucket, one object per host version (named "<host
// key>/<version>", with the host, version, digest and creation time in
// its metadata), and in a KV bucket each host's current version, whose
// key history is the history of publishes and rollbacks, and the list of
// versions kept.
//
// One object per version, rather than one object per host whose revisions
// would be the versions, because an Object Store keeps only the latest
// revision of an object: putting a name again deletes the previous bytes,
// and there would be nothing to roll back to.
//
// Every read is validated ([model.DecodeDigest], and the digest against
// the one recorded at publish): a model changed in the store is refused
// with an error wrapping [ErrCorrupt]. Host names are any that
// [ingest.CheckHost] accepts; they are escaped in keys and names.
//
// A Registry is safe for concurrent use, by several processes too:
// version numbers are handed out by compare-and-set on the index.
type Registry struct {
	cfg     RegistryConfig
	objects jetstream.ObjectStore
	index   jetstream.KeyValue
	stream  jetstream.Stream // the object store's stream, to purge deletion markers
}

var _ Store = (*Registry)(nil)

// NewRegistry binds the registry's buckets, creating the missing ones with
// cfg's settings.
func NewRegistry(ctx context.Context, js jetstream.JetStream, cfg RegistryConfig) (*Registry, error) {
	return newRegistry(ctx, js, cfg, true)
}

// OpenRegistry binds the registry's existing buckets; it fails when one is
// missing (a server where nothing was ever published). Reading commands
// use it, so that they create nothing.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, cfg RegistryConfig) (*Registry, error) {
	return newRegistry(ctx, js, cfg, false)
}

func newRegistry(ctx context.Context, js jetstream.JetStream, cfg RegistryConfig, create bool) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	r := &Registry{cfg: cfg}
	var err error
	r.objects, err = js.ObjectStore(ctx, cfg.Objects)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		r.objects, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      cfg.Objects,
			Description: "dagmm model artifacts, one object per host version",
			MaxBytes:    cmp.Or(cfg.MaxBytes, -1),
			Storage:     storage,
			Replicas:    cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			r.objects, err = js.ObjectStore(ctx, cfg.Objects)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: registry objects bucket %s: %w", cfg.Objects, err)
	}
	r.index, err = js.KeyValue(ctx, cfg.Index)
	if errors.Is(err, jetstream.ErrBucketNotFound) && create {
		r.index, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.Index,
			Description: "dagmm model registry: each host's current version (with history) and versions kept",
			History:     uint8(cfg.History),
			Storage:     storage,
			Replicas:    cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			r.index, err = js.KeyValue(ctx, cfg.Index)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: registry index bucket %s: %w", cfg.Index, err)
	}
	// The Object Store's stream is OBJ_<bucket> (ADR-20).
	if r.stream, err = js.Stream(ctx, "OBJ_"+cfg.Objects); err != nil {
		return nil, fmt.Errorf("fleet: registry objects bucket %s: %w", cfg.Objects, err)
	}
	return r, nil
}

// Config returns the registry's settings, defaults filled in.
func (r *Registry) Config() RegistryConfig { return r.cfg }

// objectName is the name of the object holding version v of a host.
func objectName(host string, v uint64) string {
	return hostKey(host) + "/" + strconv.FormatUint(v, 10)
}

// Publish validates artifact with [model.DecodeDigest], stores it as the
// host's next version and makes that version current. An invalid artifact
// is refused and nothing is stored. Once the host has more than
// [RegistryConfig.Keep] versions, the oldest are deleted (never the
// current one); a failure there is logged, not returned, since the model
// is published.
//
// When another publisher made a higher version of the same host current
// while this one was storing its artifact, that higher version stays
// current; the returned version is stored and can be rolled back to.
func (r *Registry) Publish(ctx context.Context, host string, artifact []byte) (ModelInfo, error) {
	if err := checkHostName(host); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: publish: %w", err)
	}
	_, digest, err := model.DecodeDigest(bytes.NewReader(artifact))
	if err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: publish host %q: invalid model artifact: %w", host, err)
	}
	info := ModelInfo{Host: host, Digest: digest, Size: int64(len(artifact)), Created: time.Now().UTC().Truncate(time.Millisecond)}
	vkey := verPrefix + hostKey(host)
	// Reserve the version number first, so that two publishers never put
	// the same object name.
	if _, err := r.updateVersions(ctx, vkey, func(v *versionList) error {
		v.Latest++
		info.Version = v.Latest
		return nil
	}); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: publish host %q: reserve a version: %w", host, err)
	}
	meta := jetstream.ObjectMeta{
		Name:        objectName(host, info.Version),
		Description: fmt.Sprintf("dagmm model of host %q, version %d", host, info.Version),
		Metadata: map[string]string{
			MetaHost:    host,
			MetaVersion: strconv.FormatUint(info.Version, 10),
			MetaDigest:  digest,
			MetaCreated: info.Created.Format(time.RFC3339Nano),
		},
	}
	if _, err := r.objects.Put(ctx, meta, bytes.NewReader(artifact)); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: publish host %q version %d: store the artifact: %w", host, info.Version, err)
	}
	if _, err := r.updateVersions(ctx, vkey, func(v *versionList) error {
		v.Kept = append(v.Kept, info)
		slices.SortFunc(v.Kept, func(a, b ModelInfo) int { return cmp.Compare(a.Version, b.Version) })
		return nil
	}); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: publish host %q version %d: record the version: %w", host, info.Version, err)
	}
	if err := r.setCurrent(ctx, info, CausePublish); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: publish host %q version %d: make it current: %w", host, info.Version, err)
	}
	r.prune(ctx, host)
	return info, nil
}

// setCurrent makes info the host's current version, unless a higher
// version was published meanwhile.
func (r *Registry) setCurrent(ctx context.Context, info ModelInfo, cause string) error {
	key := curPrefix + hostKey(info.Host)
	for range casAttempts {
		cur, rev, err := r.current(ctx, info.Host)
		if err != nil && !errors.Is(err, ErrNoModel) {
			return err
		}
		if rev > 0 && cur.Version > info.Version {
			r.cfg.Log.Warn("fleet: a newer version was published meanwhile; it stays current",
				"host", info.Host, "version", info.Version, "current", cur.Version)
			return nil
		}
		if err = r.putCurrent(ctx, key, Change{ModelInfo: info, From: cur.Version, Cause: cause}, rev); !conflict(err) {
			return err
		}
	}
	return fmt.Errorf("still changing after %d attempts", casAttempts)
}

// putCurrent writes the current record of a host if the key is still at
// revision rev (0: the key has no value).
func (r *Registry) putCurrent(ctx context.Context, key string, c Change, rev uint64) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = r.index.Create(ctx, key, data)
	} else {
		_, err = r.index.Update(ctx, key, data, rev)
	}
	return err
}

// conflict reports whether err is a compare-and-set that lost to another
// writer.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// updateVersions applies f to a host's versions record by compare-and-set,
// retrying when another writer changed it in between.
func (r *Registry) updateVersions(ctx context.Context, vkey string, f func(*versionList) error) (versionList, error) {
	for range casAttempts {
		v, rev, err := r.readVersions(ctx, vkey)
		if err != nil {
			return v, err
		}
		if err := f(&v); err != nil {
			return v, err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return v, err
		}
		if rev == 0 {
			_, err = r.index.Create(ctx, vkey, data)
		} else {
			_, err = r.index.Update(ctx, vkey, data, rev)
		}
		if !conflict(err) {
			return v, err
		}
	}
	return versionList{}, fmt.Errorf("still changing after %d attempts", casAttempts)
}

// readVersions reads a host's versions record and its revision (0 and an empty
// record when there is none).
func (r *Registry) readVersions(ctx context.Context, vkey string) (versionList, uint64, error) {
	e, err := r.index.Get(ctx, vkey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return versionList{}, 0, nil
	}
	if err != nil {
		return versionList{}, 0, fmt.Errorf("read %s: %w", vkey, err)
	}
	var v versionList
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return versionList{}, 0, fmt.Errorf("read %s: %w: %v", vkey, ErrCorrupt, err)
	}
	return v, e.Revision(), nil
}

// current reads a host's current record and its revision, or an error
// wrapping ErrNoModel.
func (r *Registry) current(ctx context.Context, host string) (Change, uint64, error) {
	key := curPrefix + hostKey(host)
	e, err := r.index.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Change{}, 0, fmt.Errorf("%w for host %q", ErrNoModel, host)
	}
	if err != nil {
		return Change{}, 0, fmt.Errorf("fleet: current model of host %q: read %s: %w", host, key, err)
	}
	c, err := decodeChange(e)
	if err != nil {
		return Change{}, 0, fmt.Errorf("fleet: current model of host %q: %w", host, err)
	}
	return c, e.Revision(), nil
}

// decodeChange decodes a current record.
func decodeChange(e jetstream.KeyValueEntry) (Change, error) {
	var c Change
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Change{}, fmt.Errorf("read %s revision %d: %w: %v", e.Key(), e.Revision(), ErrCorrupt, err)
	}
	c.At = e.Created()
	return c, nil
}

// prune deletes the host's oldest versions beyond Keep, never the current
// one: first from the index, so no reader is sent to them, then their
// objects.
func (r *Registry) prune(ctx context.Context, host string) {
	if vs, _, err := r.readVersions(ctx, verPrefix+hostKey(host)); err == nil && len(vs.Kept) <= r.cfg.Keep {
		return // nothing to delete: no write
	}
	cur, err := r.Current(ctx, host)
	if err != nil {
		r.cfg.Log.Warn("fleet: not pruning old versions", "host", host, "err", err)
		return
	}
	var drop []ModelInfo
	if _, err := r.updateVersions(ctx, verPrefix+hostKey(host), func(v *versionList) error {
		drop = drop[:0]
		keep := v.Kept[:0:0]
		excess := len(v.Kept) - r.cfg.Keep
		for _, m := range v.Kept {
			if excess > 0 && m.Version != cur.Version {
				drop = append(drop, m)
				excess--
				continue
			}
			keep = append(keep, m)
		}
		v.Kept = keep
		return nil
	}); err != nil {
		r.cfg.Log.Warn("fleet: not pruning old versions", "host", host, "err", err)
		return
	}
	for _, m := range drop {
		if err := r.deleteObject(ctx, objectName(host, m.Version)); err != nil {
			r.cfg.Log.Warn("fleet: deleting an old version failed", "host", host, "version", m.Version, "err", err)
		}
	}
}

// deleteObject deletes an object and then its deletion marker: the Object
// Store keeps a marker per deleted name forever, and a fleet retrained
// every few hours would pile up millions of them. The marker is the last
// message on the name's meta subject, $O.<bucket>.M.<base64url name>
// (ADR-20).
func (r *Registry) deleteObject(ctx context.Context, name string) error {
	if err := r.objects.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	subject := "$O." + r.cfg.Objects + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
	return r.stream.Purge(ctx, jetstream.WithPurgeSubject(subject))
}

// Current returns the host's current version, or an error wrapping
// [ErrNoModel] when it has none.
func (r *Registry) Current(ctx context.Context, host string) (ModelInfo, error) {
	if err := checkHostName(host); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: %w", err)
	}
	c, _, err := r.current(ctx, host)
	info := c.ModelInfo
	info.Since = c.At
	return info, err
}

// Versions returns the versions of the host's model kept, by ascending
// version; none (and no error) for a host never published.
func (r *Registry) Versions(ctx context.Context, host string) ([]ModelInfo, error) {
	if err := checkHostName(host); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	v, _, err := r.readVersions(ctx, verPrefix+hostKey(host))
	if err != nil {
		return nil, fmt.Errorf("fleet: versions of host %q: %w", host, err)
	}
	return v.Kept, nil
}

// Get returns the artifact of the host's current version, validated, and
// its description. See [Registry.GetVersion].
func (r *Registry) Get(ctx context.Context, host string) ([]byte, ModelInfo, error) {
	data, _, info, err := r.fetchCurrent(ctx, host)
	return data, info, err
}

// Load returns the model of the host's current version, validated, and its
// description. See [Registry.LoadVersion].
func (r *Registry) Load(ctx context.Context, host string) (*model.Model, ModelInfo, error) {
	_, m, info, err := r.fetchCurrent(ctx, host)
	return m, info, err
}

// GetVersion returns the artifact of version v of the host's model and its
// description. The artifact is validated ([model.DecodeDigest]) and its
// digest compared with the one recorded at publish: a model that is not
// the one published is refused with an error wrapping [ErrCorrupt] that
// says what is wrong. A version not kept gives an error wrapping
// [ErrNoModel].
func (r *Registry) GetVersion(ctx context.Context, host string, v uint64) ([]byte, ModelInfo, error) {
	data, _, info, err := r.fetch(ctx, host, v)
	return data, info, err
}

// LoadVersion is [Registry.GetVersion] that returns the decoded model.
func (r *Registry) LoadVersion(ctx context.Context, host string, v uint64) (*model.Model, ModelInfo, error) {
	_, m, info, err := r.fetch(ctx, host, v)
	return m, info, err
}

func (r *Registry) fetchCurrent(ctx context.Context, host string) ([]byte, *model.Model, ModelInfo, error) {
	cur, err := r.Current(ctx, host)
	if err != nil {
		return nil, nil, ModelInfo{}, err
	}
	return r.fetch(ctx, host, cur.Version)
}

// fetch reads and validates version v of a host's model.
func (r *Registry) fetch(ctx context.Context, host string, v uint64) ([]byte, *model.Model, ModelInfo, error) {
	if err := checkHostName(host); err != nil {
		return nil, nil, ModelInfo{}, fmt.Errorf("fleet: %w", err)
	}
	vs, _, err := r.readVersions(ctx, verPrefix+hostKey(host))
	if err != nil {
		return nil, nil, ModelInfo{}, fmt.Errorf("fleet: host %q version %d: %w", host, v, err)
	}
	info, ok := vs.find(v)
	if !ok {
		return nil, nil, ModelInfo{}, fmt.Errorf("%w: host %q version %d (versions kept: %v)", ErrNoModel, host, v, vs.numbers())
	}
	name := objectName(host, v)
	data, err := r.objects.GetBytes(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, nil, info, fmt.Errorf("%w: host %q version %d: object %q is missing from bucket %s", ErrCorrupt, host, v, name, r.cfg.Objects)
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return nil, nil, info, fmt.Errorf("%w: host %q version %d: object %q: the bytes stored do not match the object's digest (%v)", ErrCorrupt, host, v, name, err)
	case err != nil:
		return nil, nil, info, fmt.Errorf("fleet: host %q version %d: read object %q: %w", host, v, name, err)
	}
	m, digest, err := model.DecodeDigest(bytes.NewReader(data))
	switch {
	case err != nil:
		return nil, nil, info, fmt.Errorf("%w: host %q version %d: object %q is not a valid artifact: %w", ErrCorrupt, host, v, name, err)
	case digest != info.Digest:
		return nil, nil, info, fmt.Errorf("%w: host %q version %d: object %q holds the model with digest %s, but version %d was published with digest %s",
			ErrCorrupt, host, v, name, digest, v, info.Digest)
	}
	return data, m, info, nil
}

// Rollback makes version to of the host's model current again, or, when
// to is 0, the highest version kept below the current one; it returns the
// new current version. The version is read and validated first: a
// corrupted one is refused and the current version stays. It fails when
// the current version changed while it ran (run it again).
func (r *Registry) Rollback(ctx context.Context, host string, to uint64) (ModelInfo, error) {
	if err := checkHostName(host); err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: rollback: %w", err)
	}
	key := curPrefix + hostKey(host)
	cur, rev, err := r.current(ctx, host)
	if err != nil {
		return ModelInfo{}, err
	}
	if to == 0 {
		vs, err := r.Versions(ctx, host)
		if err != nil {
			return ModelInfo{}, fmt.Errorf("fleet: rollback host %q: %w", host, err)
		}
		for _, m := range vs {
			if m.Version < cur.Version {
				to = m.Version
			}
		}
		if to == 0 {
			return ModelInfo{}, fmt.Errorf("fleet: rollback host %q: no version kept below the current version %d", host, cur.Version)
		}
	}
	if to == cur.Version {
		return ModelInfo{}, fmt.Errorf("fleet: rollback host %q: version %d is already current", host, to)
	}
	_, _, info, err := r.fetch(ctx, host, to)
	if err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: rollback host %q from version %d to %d refused, version %d stays current: %w", host, cur.Version, to, cur.Version, err)
	}
	err = r.putCurrent(ctx, key, Change{ModelInfo: info, From: cur.Version, Cause: CauseRollback}, rev)
	if conflict(err) {
		return ModelInfo{}, fmt.Errorf("fleet: rollback host %q: its current version changed while rolling back from version %d; look again", host, cur.Version)
	}
	if err != nil {
		return ModelInfo{}, fmt.Errorf("fleet: rollback host %q to version %d: %w", host, to, err)
	}
	return info, nil
}

// History returns the changes of the host's current version, oldest first:
// the last [RegistryConfig.History] publishes and rollbacks (the KV key's
// history). It returns an error wrapping [ErrNoModel] for a host never
// published.
func (r *Registry) History(ctx context.Context, host string) ([]Change, error) {
	if err := checkHostName(host); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	entries, err := r.index.History(ctx, curPrefix+hostKey(host))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w for host %q", ErrNoModel, host)
	}
	if err != nil {
		return nil, fmt.Errorf("fleet: history of host %q: %w", host, err)
	}
	out := make([]Change, 0, len(entries))
	for _, e := range entries {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		c, err := decodeChange(e)
		if err != nil {
			return nil, fmt.Errorf("fleet: history of host %q: %w", host, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// List returns the current version of every host, by host name.
func (r *Registry) List(ctx context.Context) ([]ModelInfo, error) {
	w, err := r.index.Watch(ctx, curPrefix+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: list models: %w", err)
	}
	defer w.Stop()
	var out []ModelInfo
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fleet: list models: %w", ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("fleet: list models: the watch ended early")
			}
			if e == nil { // every current value delivered
				slices.SortFunc(out, func(a, b ModelInfo) int { return cmp.Compare(a.Host, b.Host) })
				return out, nil
			}
			c, err := decodeChange(e)
			if err != nil {
				return nil, fmt.Errorf("fleet: list models: %w", err)
			}
			out = append(out, c.ModelInfo)
		}
	}
}

// Watch delivers every change of a host's current version made after it
// returns (publishes and rollbacks, of every host), in order, until ctx is
// done; then it closes the channel. A scorer calls Watch before loading its
// models, so that no change falls between, and loads the version a change
// names with [Registry.LoadVersion], keeping its model when that fails.
// The channel holds up to 64 changes; a reader slower than that holds the
// watch back.
func (r *Registry) Watch(ctx context.Context) (<-chan Change, error) {
	w, err := r.index.Watch(ctx, curPrefix+"*", jetstream.UpdatesOnly(), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("fleet: watch models: %w", err)
	}
	out := make(chan Change, 64)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			var e jetstream.KeyValueEntry
			select {
			case <-ctx.Done():
				return
			case en, ok := <-w.Updates():
				if !ok {
					return
				}
				e = en
			}
			if e == nil {
				continue
			}
			c, err := decodeChange(e)
			if err != nil {
				r.cfg.Log.Warn("fleet: skipping a registry entry that cannot be read", "err", err)
				continue
			}
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
