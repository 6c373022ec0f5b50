package zfs

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Record types of a send stream (dmu_replay_record_t.drr_type).
const (
	drrObject        = 1
	drrFreeObjects   = 2
	drrWrite         = 3
	drrFree          = 4
	drrWriteByRef    = 6
	drrSpill         = 7
	drrWriteEmbedded = 8
	drrObjectRange   = 9
	drrRedact        = 10

	// drrFlagClone marks a substream received as a clone of the snapshot
	// with its from-GUID, found anywhere in the pool.
	drrFlagClone = 0x1
	// maxRecordPayload bounds one record's payload: blocks are at most
	// 16 MiB; a BEGIN's packed list is small.
	maxRecordPayload = 64 << 20
)

// StreamGuard passes a send stream through record by record, and fails
// before it passes on a record that would make zfs recv do more than
// receive snapshots of one dataset:
//
//   - a compound stream (zfs send -I) must carry no property list (-p,
//     -R), and must not nest another compound stream;
//   - every substream must be of the same type (filesystem or volume),
//     of the same dataset as the first (zfs recv names the datasets of a
//     compound stream's substreams after their own names: a substream of
//     another dataset lands beside the target, and is received without
//     the options given for the target);
//   - no substream may be a clone (its origin is searched for in the
//     whole pool).
//
// Everything after the stream's last END record is dropped. Errors wrap
// ErrStreamHeader, or io.ErrUnexpectedEOF for a stream cut short.
//
// The record sizes follow OpenZFS's own reader of a stream
// (libzfs's recv_skip): a record of 312 bytes, then a payload whose
// length its type and fields give.
type StreamGuard struct {
	r   io.Reader
	bo  binary.ByteOrder
	rec [streamRecordLen]byte

	pending []byte // a checked record, not yet read out
	payload int64  // payload bytes of the current record still to pass
	head    StreamHeader
	started bool
	// state
	compound    bool
	compoundEnd bool // the compound header's END is next
	inSub       bool
	dataset     string // every substream's dataset
	typ         Type
	done        bool
	records     int
	// split mode (Split): the compound stream's own records are dropped
	// and Read ends at each substream's END until Next.
	split, subEnded, drop bool
	err                   error
}

// NewStreamGuard returns a guard over r.
func NewStreamGuard(r io.Reader) *StreamGuard { return &StreamGuard{r: r} }

// Head checks the stream's head (up to the first substream's BEGIN
// record) and returns what it says. It must be called before Read; the
// head stays buffered for Read.
func (g *StreamGuard) Head() (StreamHeader, error) {
	for !g.inSub {
		switch {
		case g.err != nil:
			return g.head, g.err
		case g.done:
			return StreamHeader{}, g.fail(fmt.Errorf("%w: the stream has no substream", ErrStreamHeader))
		}
		if err := g.next(); err != nil {
			return g.head, err
		}
	}
	return g.head, nil
}

// Split makes Read pass one substream at a time, each a stream of its own
// that ends after its END record; Next moves on to the next one. The
// compound stream's head and last END are dropped. Call it before Head.
//
// Receiving a compound stream's substreams one zfs recv at a time keeps
// libzfs's handling of packages out of reach: it names each substream's
// dataset itself, applies -o only to the first, and when a substream's
// snapshot already exists on the target it skips ahead with its own
// record reader (recv_skip) after the kernel has already consumed the
// next record's header, so that its idea of where records begin is no
// longer the guard's. A single substream ends zfs recv at its END.
func (g *StreamGuard) Split() { g.split = true }

// Next moves a split guard to the next substream and returns its header;
// io.EOF when the stream has no more. The current substream must have
// been read to its end.
func (g *StreamGuard) Next() (StreamHeader, error) {
	if !g.subEnded || len(g.pending) > 0 || g.payload > 0 {
		return StreamHeader{}, g.fail(fmt.Errorf("%w: the next substream was asked for before this one ended", ErrStreamHeader))
	}
	g.subEnded = false
	for !g.inSub {
		switch {
		case g.err != nil:
			return StreamHeader{}, g.err
		case g.done:
			return StreamHeader{}, io.EOF
		}
		if err := g.next(); err != nil {
			return StreamHeader{}, err
		}
	}
	return g.head, nil
}

// Err returns the error that stopped the stream, if any: a refused record
// or a stream cut short.
func (g *StreamGuard) Err() error { return g.err }

// Read passes the checked stream on.
func (g *StreamGuard) Read(p []byte) (int, error) {
	for {
		if len(g.pending) > 0 {
			n := copy(p, g.pending)
			g.pending = g.pending[n:]
			return n, nil
		}
		if g.payload > 0 {
			if int64(len(p)) > g.payload {
				p = p[:g.payload]
			}
			n, err := g.r.Read(p)
			g.payload -= int64(n)
			if err == io.EOF && g.payload > 0 {
				err = g.fail(fmt.Errorf("reading a record's payload: %w", io.ErrUnexpectedEOF))
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if g.err != nil {
			return 0, g.err
		}
		if g.done || g.subEnded {
			return 0, io.EOF
		}
		if err := g.next(); err != nil {
			return 0, err
		}
	}
}

func (g *StreamGuard) fail(err error) error {
	if g.err == nil {
		g.err = err
	}
	return g.err
}

// next reads and checks one record, leaving it in pending and its
// payload length in payload.
func (g *StreamGuard) next() error {
	n, err := io.ReadFull(g.r, g.rec[:])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return g.fail(fmt.Errorf("reading a record: the stream ended before its END record: %w", io.ErrUnexpectedEOF))
	}
	if err != nil {
		return g.fail(err)
	}
	b := g.rec[:n]
	if !g.started {
		bo, err := streamByteOrder(b)
		if err != nil {
			return g.fail(err)
		}
		g.bo, g.started = bo, true
	}
	bo := g.bo
	var payload uint64
	switch t := bo.Uint32(b[0:4]); t {
	case drrBegin:
		if err := g.begin(b); err != nil {
			return g.fail(err)
		}
		payload = uint64(bo.Uint32(b[4:8]))
	case drrEnd:
		switch {
		case g.compoundEnd:
			g.compoundEnd = false
			g.drop = g.split
		case g.inSub:
			g.inSub = false
			g.done = !g.compound
			g.subEnded = g.split
		case g.compound:
			g.done = true // the compound stream's last END
			g.drop = g.split
		default:
			return g.fail(fmt.Errorf("%w: an END record outside a substream", ErrStreamHeader))
		}
	case drrObject:
		if raw := bo.Uint32(b[36:40]); raw != 0 {
			payload = uint64(raw)
		} else {
			payload = roundUp8(uint64(bo.Uint32(b[28:32])))
		}
	case drrWrite:
		if b[50] != 0 { // compressed (or raw): the physical size
			payload = bo.Uint64(b[96:104])
		} else {
			payload = bo.Uint64(b[32:40])
		}
	case drrSpill:
		if c := bo.Uint64(b[40:48]); c != 0 {
			payload = c
		} else {
			payload = bo.Uint64(b[16:24])
		}
	case drrWriteEmbedded:
		payload = roundUp8(uint64(bo.Uint32(b[52:56])))
	case drrFreeObjects, drrFree, drrWriteByRef, drrObjectRange, drrRedact:
	default:
		return g.fail(fmt.Errorf("%w: unknown record type %d", ErrStreamHeader, t))
	}
	if t := bo.Uint32(b[0:4]); t != drrBegin && t != drrEnd && !g.inSub {
		return g.fail(fmt.Errorf("%w: a data record (type %d) outside a substream", ErrStreamHeader, t))
	}
	if payload > maxRecordPayload {
		return g.fail(fmt.Errorf("%w: a record announces a payload of %d bytes", ErrStreamHeader, payload))
	}
	if !g.drop {
		g.pending = append(g.pending, b...)
	}
	g.drop = false
	g.payload = int64(payload)
	g.records++
	return nil
}

// begin checks a BEGIN record.
func (g *StreamGuard) begin(b []byte) error {
	if _, err := streamByteOrder(b); err != nil {
		return err
	}
	h, hdr, payload := parseBegin(b, g.bo)
	flags := g.bo.Uint32(b[36:40])
	switch {
	case g.inSub || g.compoundEnd:
		return fmt.Errorf("%w: a BEGIN record inside a substream", ErrStreamHeader)
	case g.done:
		return fmt.Errorf("%w: a record after the stream's end", ErrStreamHeader)
	case hdr == hdrCompound && g.records == 0:
		if payload > 0 {
			g.head = StreamHeader{Compound: true, Properties: true}
			return fmt.Errorf("%w: the stream carries a property list (zfs send -p or -R)", ErrStreamHeader)
		}
		g.compound, g.compoundEnd = true, true
		g.drop = g.split
		g.dataset = datasetPart(h.ToName)
		return nil
	case hdr == hdrCompound:
		return fmt.Errorf("%w: a compound stream nests another", ErrStreamHeader)
	case hdr != hdrSubstream:
		return fmt.Errorf("%w: unknown stream header type %d", ErrStreamHeader, hdr)
	}
	if err := h.checkType(); err != nil {
		return err
	}
	if flags&drrFlagClone != 0 {
		return fmt.Errorf("%w: the substream of %q is a clone", ErrStreamHeader, shortName(h.ToName))
	}
	ds := datasetPart(h.ToName)
	switch {
	case g.dataset == "" && g.typ == "":
		g.dataset = ds
	case ds != g.dataset:
		return fmt.Errorf("%w: a substream of %q in a stream of %q", ErrStreamHeader, shortName(ds), shortName(g.dataset))
	}
	switch {
	case g.typ == "":
		g.typ = h.Type
	case h.Type != g.typ:
		return fmt.Errorf("%w: substreams of a filesystem and of a volume", ErrStreamHeader)
	}
	h.Compound = g.compound
	g.head = h
	g.inSub = true
	return nil
}

func roundUp8(n uint64) uint64 { return (n + 7) &^ 7 }

// datasetPart is the part of a snapshot name before '@' (the whole name
// when there is none).
func datasetPart(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] == '@' {
			return name[:i]
		}
	}
	return name
}

func shortName(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
