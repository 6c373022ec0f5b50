package cmd

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
)

// listingCache keeps a job's snapshot listings between runs in the state
// directory (sync.ListingCache): listings/<job>-<key>.json, where key
// stands for what the listings are of (the job's kind, far host and
// command, datasets and root), so that a job pointed elsewhere never reads
// another place's listings. It is an optimisation only: the file may be
// deleted at any time.
type listingCache struct{ path string }

func newListingCache(stateDir string, j *jobConfig) *listingCache {
	parts := []string{j.Type, j.Root, strings.Join(j.Datasets, "\x00"), strconv.Itoa(j.Replication.StripComponents)}
	if r := j.Remote; r != nil {
		parts = append(parts, r.Host, r.User, strconv.Itoa(r.Port), r.Command)
	}
	h := sha256.Sum256([]byte(strings.Join(parts, "\x01")))
	return &listingCache{path: filepath.Join(stateDir, "listings", j.Name+"-"+hex.EncodeToString(h[:6])+".json")}
}

func (c *listingCache) Load() (zsync.ListingState, error) {
	var s zsync.ListingState
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return zsync.ListingState{}, fmt.Errorf("%s: %w", c.path, err)
	}
	return s, nil
}

func (c *listingCache) Save(s zsync.ListingState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	if err := state.WriteFileAtomic(c.path, b, 0o600); err != nil {
		// an older file left in place would be read by the next run as
		// if this run had not happened: take it away (removing works on
		// a full disk), so that the next run lists in full
		if rerr := os.Remove(c.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return fmt.Errorf("%w; the older %s could not be removed either (%v), so the next run may reuse those of its listings that still check out against the datasets", err, c.path, rerr)
		}
		return err
	}
	return nil
}
