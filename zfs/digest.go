package zfs

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"time"
)

// Digest is a checksum of a snapshot's contents (zsync verify --data): the
// same for a snapshot and its replica, whatever either pool stores them
// with.
type Digest struct {
	// Sum is the SHA-256 of the contents, in hexadecimal.
	Sum string `json:"sum"`
	// Bytes counts the data bytes summed (blocks of zeros are left out).
	Bytes int64 `json:"bytes"`
	// Objects counts the objects (files, directories, ...) summed.
	Objects int64 `json:"objects"`
	// Sample is the percentage of blocks summed (0: all).
	Sample int `json:"sample,omitempty"`
}

// DigestOptions are how SnapshotDigest reads.
type DigestOptions struct {
	// Limit caps the bytes read per second (0: no limit).
	Limit int64
	// Sample sums only about this percentage of the data blocks (1 to
	// 99; 0 or 100: all), the same ones on both sides: zfs still reads
	// the whole snapshot, the sums are cheaper. Every object is summed.
	Sample int
}

// Validate checks the options.
func (o DigestOptions) Validate() error {
	if o.Limit < 0 {
		return fmt.Errorf("negative read limit %d", o.Limit)
	}
	if o.Sample < 0 || o.Sample > 100 {
		return fmt.Errorf("sample %d%%: want 1 to 100", o.Sample)
	}
	return nil
}

// ErrDigestStream is wrapped by DigestStream for a stream it cannot sum: a
// record of a kind a plain full send does not have.
var ErrDigestStream = errors.New("cannot checksum this send stream")

// SnapshotDigest sums the contents of snapshot from its plain full send
// stream (zfs send without flags: data decompressed, large blocks split,
// nothing embedded), as o says. Nothing but the sum leaves this host.
func (c *CLI) SnapshotDigest(ctx context.Context, snapshot string, o DigestOptions) (Digest, error) {
	if err := o.Validate(); err != nil {
		return Digest{}, err
	}
	limit := o.Limit
	v, err := SendOptions{To: snapshot}.Validate()
	if err != nil {
		return Digest{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := c.Send(ctx, v)
	if err != nil {
		return Digest{}, err
	}
	var r io.Reader = rc
	if limit > 0 {
		r = &paced{r: rc, limit: limit, start: time.Now(), ctx: ctx}
	}
	d, derr := DigestStream(r, o.Sample)
	if derr != nil {
		cancel() // stop zfs send before waiting for it
	}
	cerr := rc.Close()
	if derr != nil {
		return Digest{}, fmt.Errorf("checksum %s: %w", snapshot, derr)
	}
	if cerr != nil {
		return Digest{}, fmt.Errorf("checksum %s: %w", snapshot, cerr)
	}
	return d, nil
}

// paced reads no faster than limit bytes per second on average.
type paced struct {
	r     io.Reader
	limit int64
	start time.Time
	n     int64
	ctx   context.Context
}

func (p *paced) Read(b []byte) (int, error) {
	if int64(len(b)) > p.limit {
		b = b[:max(p.limit, 1)]
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if ahead := time.Duration(float64(p.n)/float64(p.limit)*float64(time.Second)) - time.Since(p.start); ahead > 0 {
		t := time.NewTimer(ahead)
		select {
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return n, p.ctx.Err()
		}
	}
	return n, err
}

// DigestStream sums a plain full send stream of one snapshot: for every
// object its number, type, bonus type, block size and bonus data (the
// file's attributes), and for every block of data that is not all zeros
// its object, offset and bytes, in the order of the stream. Records that
// free objects or ranges are left out, and so are blocks of zeros: a pool
// with compression stores them as holes, one without as data, and both
// read back as zeros. The stream's header (names, guids, feature flags)
// and checksums are left out too: they differ between a snapshot and its
// replica. With sample between 1 and 99, only the blocks whose object and
// offset fall in that percentage are summed. Errors wrap ErrDigestStream,
// ErrStreamHeader or io.ErrUnexpectedEOF.
func DigestStream(r io.Reader, sample int) (Digest, error) {
	if sample >= 100 {
		sample = 0
	}
	picked := func(object, offset uint64) bool {
		if sample <= 0 {
			return true
		}
		f := fnv.New64a()
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], object)
		binary.LittleEndian.PutUint64(b[8:], offset)
		f.Write(b[:])
		return f.Sum64()%100 < uint64(sample)
	}
	var (
		d       = Digest{Sample: sample}
		rec     [streamRecordLen]byte
		bo      binary.ByteOrder
		h       = sha256.New()
		buf     []byte
		began   bool
		field   [8]byte
		put64   = func(h hash.Hash, v uint64) { bo.PutUint64(field[:], v); h.Write(field[:]) }
		readAll = func(n uint64) ([]byte, error) {
			if n > maxRecordPayload {
				return nil, fmt.Errorf("%w: a record announces a payload of %d bytes", ErrStreamHeader, n)
			}
			if uint64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			b := buf[:n]
			if _, err := io.ReadFull(r, b); err != nil {
				return nil, fmt.Errorf("reading a record's payload: %w", io.ErrUnexpectedEOF)
			}
			return b, nil
		}
	)
	for {
		if _, err := io.ReadFull(r, rec[:]); err != nil {
			return Digest{}, fmt.Errorf("reading a record: the stream ended before its END record: %w", io.ErrUnexpectedEOF)
		}
		b := rec[:]
		if bo == nil {
			o, err := streamByteOrder(b)
			if err != nil {
				return Digest{}, err
			}
			bo = o
		}
		switch t := bo.Uint32(b[0:4]); t {
		case drrBegin:
			head, hdr, payload := parseBegin(b, bo)
			if began || hdr != hdrSubstream {
				return Digest{}, fmt.Errorf("%w: not the stream of one snapshot", ErrDigestStream)
			}
			if head.FromGUID != 0 {
				return Digest{}, fmt.Errorf("%w: an incremental stream", ErrDigestStream)
			}
			began = true
			if _, err := readAll(uint64(payload)); err != nil {
				return Digest{}, err
			}
		case drrEnd:
			if !began {
				return Digest{}, fmt.Errorf("%w: an END record before any BEGIN", ErrStreamHeader)
			}
			d.Sum = hex.EncodeToString(h.Sum(nil))
			return d, nil
		case drrObject:
			if raw := bo.Uint32(b[36:40]); raw != 0 {
				return Digest{}, fmt.Errorf("%w: a raw stream", ErrDigestStream)
			}
			bonus := bo.Uint32(b[28:32])
			p, err := readAll(roundUp8(uint64(bonus)))
			if err != nil {
				return Digest{}, err
			}
			h.Write([]byte{'O'})
			put64(h, bo.Uint64(b[8:16]))          // object
			put64(h, uint64(bo.Uint32(b[16:20]))) // type
			put64(h, uint64(bo.Uint32(b[20:24]))) // bonus type
			put64(h, uint64(bo.Uint32(b[24:28]))) // block size
			put64(h, uint64(bonus))               // bonus length
			h.Write(p[:bonus])
			d.Objects++
		case drrWrite:
			if b[50] != 0 {
				return Digest{}, fmt.Errorf("%w: a compressed or raw block", ErrDigestStream)
			}
			p, err := readAll(bo.Uint64(b[32:40]))
			if err != nil {
				return Digest{}, err
			}
			if allZero(p) || !picked(bo.Uint64(b[8:16]), bo.Uint64(b[24:32])) {
				continue
			}
			h.Write([]byte{'W'})
			put64(h, bo.Uint64(b[8:16]))  // object
			put64(h, bo.Uint64(b[24:32])) // offset
			put64(h, uint64(len(p)))
			h.Write(p)
			d.Bytes += int64(len(p))
		case drrSpill:
			if bo.Uint64(b[40:48]) != 0 {
				return Digest{}, fmt.Errorf("%w: a compressed or raw spill block", ErrDigestStream)
			}
			p, err := readAll(bo.Uint64(b[16:24]))
			if err != nil {
				return Digest{}, err
			}
			h.Write([]byte{'S'})
			put64(h, bo.Uint64(b[8:16])) // object
			put64(h, uint64(len(p)))
			h.Write(p)
			d.Bytes += int64(len(p))
		case drrFreeObjects, drrFree:
		default:
			return Digest{}, fmt.Errorf("%w: a record of type %d, which a plain full send does not have", ErrDigestStream, t)
		}
	}
}

func allZero(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}
